/**
 * Why a bundle was refused. Callers branch on `code`, operators read `message`: one
 * line that says what failed and what it means, never a stack trace.
 */
export type BundleErrorCode =
  | 'EBUNDLE_READ' // the file cannot be read
  | 'EBUNDLE_FORMAT' // not a Branchline bundle (wrong container layout)
  | 'EBUNDLE_UNSIGNED' // no signature at all
  | 'EBUNDLE_NO_TRUST' // this system holds no key to check a signature with
  | 'EBUNDLE_UNTRUSTED_KEY' // signed, but by a key this system does not trust
  | 'EBUNDLE_SIGNATURE' // the signature does not match the manifest
  | 'EBUNDLE_MANIFEST' // signed manifest, but not one this build understands
  | 'EBUNDLE_ARCH' // built for another CPU
  | 'EBUNDLE_TOO_OLD' // not newer than what is installed (anti-rollback)
  | 'EBUNDLE_MIN_VERSION' // the installed version is too old to take this bundle
  | 'EBUNDLE_SIZE' // the image is not the size the manifest signs
  | 'EBUNDLE_HASH'; // the image is not the one the manifest signs

export class BundleError extends Error {
  readonly code: BundleErrorCode;
  constructor(code: BundleErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BundleError';
    this.code = code;
  }
}
