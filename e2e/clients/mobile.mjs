// A mobile or native client with DPoP, using oauth4webapi (RFC 8414 discovery, RFC 9449).
// ORIGIN, USERNAME, PASSWORD from the environment; NODE_EXTRA_CA_CERTS=<cert.pem> for a
// self-signed certificate.
import * as oauth from "oauth4webapi";

const issuer = new URL(process.env.ORIGIN);
const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { algorithm: "oauth2" }), // /.well-known/oauth-authorization-server
);
const client = { client_id: "my-app" }; // tessera has no registered public clients: any id, no secret
const auth = oauth.None();
const dpop = oauth.DPoP(client, await oauth.generateKeyPair("ES256")); // or "EdDSA"

// Password grant (RFC 6749 §4.3), bound to the key.
let tokens = await oauth.processGenericTokenEndpointResponse(
  as,
  client,
  await oauth.genericTokenEndpointRequest(as, client, auth, "password",
    { username: process.env.USERNAME, password: process.env.PASSWORD }, { DPoP: dpop }),
);
console.log(`token_type: ${tokens.token_type}, expires_in: ${tokens.expires_in}`);
const deviceToken = tokens.device_token; // send with this user's next password grant

// The API: Authorization: DPoP, and a fresh proof with the token's hash, made by the library.
const api = (path, method = "GET", body) =>
  oauth.protectedResourceRequest(tokens.access_token, method, new URL(path, issuer),
    new Headers(body ? { "content-type": "application/json" } : {}), body, { DPoP: dpop });
let res = await api("/api/notes", "POST", JSON.stringify({ text: "hello from oauth4webapi" }));
console.log(`POST /api/notes: ${res.status}`, await res.json());

// Refresh with the same key; the refresh token rotates.
tokens = await oauth.processRefreshTokenResponse(
  as,
  client,
  await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, { DPoP: dpop }),
);
res = await api("/api/whoami");
console.log(`GET /api/whoami: ${res.status}`, JSON.stringify(await res.json()));

// The next login on this device carries its device token.
tokens = await oauth.processGenericTokenEndpointResponse(
  as,
  client,
  await oauth.genericTokenEndpointRequest(as, client, auth, "password",
    { username: process.env.USERNAME, password: process.env.PASSWORD, device_token: deviceToken },
    { DPoP: dpop }),
);
console.log(`second login: ${tokens.token_type}`);

// Log out (RFC 7009).
await oauth.processRevocationResponse(
  await oauth.revocationRequest(as, client, auth, tokens.refresh_token),
);
console.log("revoked");
