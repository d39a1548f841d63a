// An independent authorization server and protected resource for the tests: panva's oidc-provider
// (OpenID-certified, not our code) issues the tokens; a small resource endpoint accepts them the way
// RFC 9449 (DPoP) and RFC 8705 (mTLS) say a resource server must. The tests check our client's wire
// format against this, so it is not only checked against our own sandbox.
//
// Usage: node server.mjs CONFIG.json  ->  prints one JSON line {"http": port, "https": port} when both
// listeners are up; stops on SIGTERM or when stdin closes (the test process is gone).
//
// Two issuers, because one authorization server cannot be both plain http and TLS on one port:
//   http://127.0.0.1:P   DPoP (nonces required at the token endpoint and the API), private_key_jwt,
//                        client secrets. DPoP proofs are only meaningful without TLS client certs.
//   https://127.0.0.1:Q  mutual TLS: tls_client_auth (PKI, the CA in the config) and
//                        self_signed_tls_client_auth, certificate-bound tokens (cnf x5t#S256).
// Both serve GET /api/items?page=N&per_page=M (items under "items", a short page ends the scan) and
// GET /peer/stats (counters the tests assert on: nonce challenges, proofs seen, proofs reused).

import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';

import { calculateJwkThumbprint, decodeJwt, EmbeddedJWK, jwtVerify } from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const PROOF_WINDOW_SECONDS = 60;
const TOTAL_ITEMS = config.total_items ?? 250;
// The resource server rotates its nonce every this many accepted requests (the previous one stays
// valid, as a server under concurrent load must allow).
const ROTATE_NONCE_EVERY = config.rotate_nonce_every ?? 3;

function b64url(buffer) {
  return Buffer.from(buffer).toString('base64url');
}

function newStats() {
  return {
    token_requests: 0,
    token_nonce_challenges: 0,
    api_requests: 0,
    api_ok: 0,
    api_nonce_challenges: 0,
    api_nonce_rotations: 0,
    api_refused: [],
    proofs_seen: 0,
    proofs_reused: 0,
    tokens_issued: { DPoP: 0, Bearer: 0 },
    client_auth_methods: {},
  };
}

// A resource server's own nonce (RFC 9449 section 9): independent of the authorization server's.
class ResourceNonces {
  constructor(stats) {
    this.stats = stats;
    this.current = b64url(randomBytes(16));
    this.previous = null;
    this.accepted = 0;
  }

  valid(nonce) {
    return nonce === this.current || (this.previous !== null && nonce === this.previous);
  }

  accept() {
    this.accepted += 1;
    if (this.accepted % ROTATE_NONCE_EVERY === 0) {
      this.previous = this.current;
      this.current = b64url(randomBytes(16));
      this.stats.api_nonce_rotations += 1;
    }
  }
}

function peerCertificatePem(socket) {
  const cert = socket.getPeerCertificate?.(false);
  if (!cert || !cert.raw) return undefined;
  const body = cert.raw.toString('base64').match(/.{1,64}/g).join('\n');
  return `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
}

function certificateThumbprint(pem) {
  return b64url(createHash('sha256').update(new X509Certificate(pem).raw).digest());
}

function commaDn(pem) {
  // Node prints a subject one attribute a line ("CN=x\nO=y"); the registered DN is "CN=x,O=y".
  return new X509Certificate(pem).subject.split('\n').join(',');
}

function buildProvider(issuer, { mtls }) {
  const stats = newStats();
  const seenJti = new Set();
  const resourceNonces = new ResourceNonces(stats);
  const clients = config.clients.filter((c) => (mtls ? c.mtls : !c.mtls)).map(({ mtls: _, ...c }) => c);

  const provider = new Provider(issuer, {
    clients,
    scopes: ['items.read'],
    clientAuthMethods: [
      'client_secret_basic',
      'client_secret_post',
      'private_key_jwt',
      'none',
      ...(mtls ? ['tls_client_auth', 'self_signed_tls_client_auth'] : []),
    ],
    ttl: { ClientCredentials: config.token_ttl ?? 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      dPoP: {
        enabled: true,
        nonceSecret: randomBytes(32),
        requireNonce: () => !mtls,
      },
      mTLS: mtls
        ? {
          enabled: true,
          certificateBoundAccessTokens: true,
          tlsClientAuth: true,
          selfSignedTlsClientAuth: true,
          getCertificate: (ctx) => peerCertificatePem(ctx.socket),
          certificateAuthorized: (ctx) => ctx.socket.authorized === true,
          certificateSubjectMatches: (ctx, property, expected) => {
            if (property !== 'tls_client_auth_subject_dn') return false;
            return commaDn(peerCertificatePem(ctx.socket)) === expected;
          },
        }
        : { enabled: false },
    },
  });
  provider.proxy = false;

  const recordProof = (ctx) => {
    const proof = ctx.get('DPoP');
    if (!proof) return undefined;
    stats.proofs_seen += 1;
    try {
      const { jti } = decodeJwt(proof);
      if (seenJti.has(jti)) stats.proofs_reused += 1;
      seenJti.add(jti);
    } catch {
      // not a JWT: the validation below refuses it
    }
    return proof;
  };

  provider.on('grant.success', (ctx) => {
    const type = ctx.body?.token_type;
    if (type in stats.tokens_issued) stats.tokens_issued[type] += 1;
    const method = ctx.oidc.client?.clientAuthMethod;
    if (method) stats.client_auth_methods[method] = (stats.client_auth_methods[method] ?? 0) + 1;
  });

  provider.use(async (ctx, next) => {
    if (ctx.path === '/peer/stats') {
      ctx.body = stats;
      return;
    }
    if (ctx.path === '/api/items') {
      await resource(ctx);
      return;
    }
    if (ctx.path === '/token') {
      stats.token_requests += 1;
      recordProof(ctx);
      await next();
      if (ctx.status === 400 && ctx.body?.error === 'use_dpop_nonce') stats.token_nonce_challenges += 1;
      return;
    }
    await next();
  });

  function refuse(ctx, status, scheme, error, description, extra = {}) {
    stats.api_refused.push(`${error}: ${description}`);
    ctx.status = status;
    ctx.set('WWW-Authenticate', `${scheme} error="${error}", error_description="${description}"`);
    for (const [name, value] of Object.entries(extra)) ctx.set(name, value);
    ctx.body = { error, error_description: description };
  }

  async function resource(ctx) {
    stats.api_requests += 1;
    const proof = recordProof(ctx);
    const [scheme, value] = (ctx.get('Authorization') || '').split(' ');
    if (!value || !['DPoP', 'Bearer'].includes(scheme)) {
      refuse(ctx, 401, 'Bearer', 'invalid_token', 'no access token');
      return;
    }
    const token = await provider.ClientCredentials.find(value);
    if (!token || token.isExpired) {
      refuse(ctx, 401, scheme, 'invalid_token', 'unknown or expired token');
      return;
    }
    if (token.jkt) {
      // RFC 9449 section 7: a DPoP-bound token only with the DPoP scheme and a valid proof of its key.
      if (scheme !== 'DPoP') {
        refuse(ctx, 401, 'DPoP', 'invalid_token', 'a DPoP-bound token needs the DPoP scheme');
        return;
      }
      if (!proof) {
        refuse(ctx, 401, 'DPoP', 'invalid_dpop_proof', 'no DPoP proof');
        return;
      }
      let payload;
      let protectedHeader;
      try {
        ({ payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { algorithms: ['ES256'], typ: 'dpop+jwt' }));
      } catch (e) {
        refuse(ctx, 401, 'DPoP', 'invalid_dpop_proof', `signature: ${e.code ?? e.message}`);
        return;
      }
      const expectedHtu = `${issuer}${ctx.path}`;
      const now = Math.floor(Date.now() / 1000);
      const ath = b64url(createHash('sha256').update(value).digest());
      const problems = [
        payload.htm !== ctx.method && 'htm mismatch',
        payload.htu !== expectedHtu && `htu ${payload.htu} is not ${expectedHtu}`,
        (typeof payload.iat !== 'number' || Math.abs(now - payload.iat) > PROOF_WINDOW_SECONDS) && 'iat not recent',
        (typeof payload.jti !== 'string' || !payload.jti) && 'no jti',
        payload.ath !== ath && 'ath mismatch',
        (await calculateJwkThumbprint(protectedHeader.jwk)) !== token.jkt && 'key is not the one the token is bound to',
      ].filter(Boolean);
      if (problems.length) {
        refuse(ctx, 401, 'DPoP', 'invalid_dpop_proof', problems.join('; '));
        return;
      }
      if (!resourceNonces.valid(payload.nonce)) {
        stats.api_nonce_challenges += 1;
        refuse(ctx, 401, 'DPoP', 'use_dpop_nonce', 'Resource server requires nonce in DPoP proof', {
          'DPoP-Nonce': resourceNonces.current,
        });
        return;
      }
      resourceNonces.accept();
      ctx.set('DPoP-Nonce', resourceNonces.current);
    }
    if (token['x5t#S256']) {
      // RFC 8705 section 3: the certificate of this connection must be the one the token is bound to.
      const pem = peerCertificatePem(ctx.socket);
      if (!pem || certificateThumbprint(pem) !== token['x5t#S256']) {
        refuse(ctx, 401, 'Bearer', 'invalid_token', 'the token is bound to another certificate');
        return;
      }
    }
    const page = Number(ctx.query.page ?? 1);
    const perPage = Math.min(Number(ctx.query.per_page ?? 50), 100);
    const first = (page - 1) * perPage;
    const items = [];
    for (let i = first; i < Math.min(first + perPage, TOTAL_ITEMS); i += 1) items.push({ id: i + 1, name: `item ${i + 1}` });
    stats.api_ok += 1;
    ctx.body = { items, page, per_page: perPage, client_id: token.clientId };
  }

  return provider;
}

function listen(server) {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

// Ports first, issuers second: an issuer names its port, which port 0 only gives after listening.
const plain = http.createServer();
const secure = https.createServer({
  key: readFileSync(config.tls.key),
  cert: readFileSync(config.tls.cert),
  ca: readFileSync(config.tls.ca),
  requestCert: true,
  rejectUnauthorized: false, // self-signed client certificates are accepted, and judged by the provider
});
const [httpPort, httpsPort] = await Promise.all([listen(plain), listen(secure)]);
const plainProvider = buildProvider(`http://127.0.0.1:${httpPort}`, { mtls: false });
const secureProvider = buildProvider(`https://127.0.0.1:${httpsPort}`, { mtls: true });
plain.on('request', plainProvider.callback());
secure.on('request', secureProvider.callback());

process.stdout.write(`${JSON.stringify({ http: httpPort, https: httpsPort })}\n`);

const stop = () => {
  plain.close();
  secure.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
