// The application/simple-message-summary body (RFC 3842 §5.2):
//   Messages-Waiting: yes
//   Message-Account: sip:1001@branch.example
//   Voice-Message: 2/8 (0/0)
// new/old, then urgent new/old (we have no urgent messages).
export const MESSAGE_SUMMARY_TYPE = 'application/simple-message-summary';

export function messageSummaryBody(account: string, counts: { newMessages: number; oldMessages: number }): string {
  return (
    `Messages-Waiting: ${counts.newMessages > 0 ? 'yes' : 'no'}\r\n` +
    `Message-Account: ${account}\r\n` +
    `Voice-Message: ${counts.newMessages}/${counts.oldMessages} (0/0)\r\n`
  );
}

/** The Event header's package name, parameters stripped ("message-summary;id=1" → "message-summary"). */
export function eventPackage(header: unknown): string | undefined {
  if (typeof header !== 'string') return undefined;
  return header.split(';')[0]?.trim().toLowerCase() || undefined;
}
