// Who is calling: an INVITE from a desk phone must carry digest credentials, the
// same ones its REGISTER uses (same realm, same HA1 table), in Proxy-Authorization
// after a 407 Proxy-Authenticate (RFC 3261 §22.3). The challenge is answered
// through the INVITE's transaction (its ACK is absorbed there) and keeps no state:
// the nonce carries everything needed to check the answer.

import type { Credentials } from '../registrar/registrar.ts';
import type { SecurityGuard } from '../security/guard.ts';
import { buildChallenge, verifyAuthorization, type DigestAlgorithm } from '../sip/digest.ts';
import { NonceService } from '../sip/nonces.ts';
import type { IncomingRequest } from '../sip/stack.ts';
import { parseUri, unescapeUriPart } from '../sip/uri.ts';

export type AuthOutcome =
  | { ok: true; extension: string }
  /** Answered (407 or 403): the call goes no further. */
  | { ok: false };

export interface CallerAuthOptions {
  realm: string;
  algorithms: readonly DigestAlgorithm[];
  nonceLifetimeMs: number;
  /** HA1 by extension: the registrar's table. */
  credentials: ReadonlyMap<string, Credentials>;
  guard?: SecurityGuard;
}

export class CallerAuthenticator {
  readonly #opts: CallerAuthOptions;
  readonly #nonces: NonceService;

  constructor(opts: CallerAuthOptions) {
    this.#opts = opts;
    this.#nonces = new NonceService({ lifetimeMs: opts.nonceLifetimeMs });
  }

  /** Checks the INVITE's credentials; answers 407/403 itself when they do not pass. */
  check(incoming: IncomingRequest, toTag: string): AuthOutcome {
    const req = incoming.request;
    const fromUri = parseUri(req.headers.from.uri);
    const fromUser = fromUri?.user !== undefined ? unescapeUriPart(fromUri.user) : undefined;
    const algorithms = (fromUser !== undefined ? this.#opts.credentials.get(fromUser)?.algorithms : undefined) ?? this.#opts.algorithms;
    const authorization = req.headers['proxy-authorization'] ?? [];
    if (authorization.length === 0) return this.#challenge(incoming, toTag, false, algorithms);
    const verdict = verifyAuthorization({
      authorization,
      method: req.method,
      requestUri: req.uri,
      realm: this.#opts.realm,
      algorithms,
      lookupHa1: (user, alg) => this.#opts.credentials.get(user)?.ha1[alg],
      nonces: this.#nonces,
    });
    if (!verdict.ok) {
      switch (verdict.code) {
        case 'stale-nonce':
          return this.#challenge(incoming, toTag, true, algorithms);
        case 'unknown-user':
        case 'bad-response':
        case 'uri-mismatch':
          this.#opts.guard?.authFailed(incoming.source.address, verdict.username ?? fromUser);
          incoming.respond(403, 'Forbidden', { toTag });
          return { ok: false };
        default:
          return this.#challenge(incoming, toTag, false, algorithms);
      }
    }
    // The phone may only call as itself: From names the extension it authenticated as.
    if (fromUser !== undefined && fromUser !== verdict.username) {
      incoming.respond(403, 'Forbidden (From is not the authenticated extension)', { toTag });
      return { ok: false };
    }
    this.#opts.guard?.authSucceeded(incoming.source.address);
    return { ok: true, extension: verdict.username };
  }

  #challenge(incoming: IncomingRequest, toTag: string, stale: boolean, algorithms: readonly DigestAlgorithm[]): AuthOutcome {
    const values = buildChallenge({ realm: this.#opts.realm, algorithms, stale, nonces: this.#nonces });
    incoming.respond(407, 'Proxy Authentication Required', { toTag, headers: { 'Proxy-Authenticate': values } });
    return { ok: false };
  }
}
