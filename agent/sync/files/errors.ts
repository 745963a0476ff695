// Errors of file transfer between sites, told apart by code. The codes a receiver
// reports travel in FileStatus.error (docs/protocol.md).
export type FileTransferErrorCode =
  | 'EBADARGS' // forwardFile was called with something unusable
  | 'ENOFILE' // the file to forward cannot be read
  | 'EDUPLICATE' // the id is taken by another file (another site, another content)
  | 'ESOURCE' // the local file changed after it was queued
  | 'ENOTFOUND' // no transfer with that id
  | 'ECHUNKHASH' // a chunk did not match its digest in the manifest (resend from `have`)
  | 'EGAP' // a chunk arrived ahead of the next one expected (resend from `have`)
  | 'ENOMANIFEST' // a chunk for a transfer the receiver has no manifest for (send the manifest)
  | 'EFILEHASH' // the whole file did not match the manifest's digest
  | 'ETOOBIG' // over the receiver's size limit
  | 'ENOHANDLER' // the receiver has no handler for the file's type (yet): try later
  | 'EINDEX'; // the receiver's handler failed to index the file: try later

export class FileTransferError extends Error {
  readonly code: FileTransferErrorCode;
  constructor(code: FileTransferErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Transfer ids become file names at the receiver: keep them to a safe alphabet. */
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export function isTransferId(id: string): boolean {
  return ID_RE.test(id);
}
