// The surface of the untyped `sip` package that Branchline uses: only its parser, as
// the speed baseline printed by test/unit/sip-parse.test.ts. The agent parses and
// writes SIP with its own code; docs/decisions/0001-sip-message-layer.md says why.
declare module 'sip' {
  /** The package's own loosely-typed message object. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  export type LooseMessage = Record<string, any>; // any: the package returns untyped objects, and nothing of ours reads them
  export function parse(data: Buffer | string): LooseMessage | undefined;
  const sip: {
    parse: typeof parse;
  };
  export default sip;
}
