// The surface of the untyped `sip` package that Branchline uses. We use only its
// message parser and serializer; see docs/decisions/0001-sip-message-layer.md.
declare module 'sip' {
  /** The package's own loosely-typed message object; our parse.ts checks and copies it. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  export type LooseMessage = Record<string, any>; // any: the package returns untyped objects; parse.ts validates every field it reads
  export function parse(data: Buffer | string): LooseMessage | undefined;
  export function stringify(message: LooseMessage): string;
  export function parseUri(text: string): LooseMessage | undefined;
  const sip: {
    parse: typeof parse;
    stringify: typeof stringify;
    parseUri: typeof parseUri;
  };
  export default sip;
}
