// The comparison peer: verifies an HS256 JWT from a cookie, like tessera's /auth/verify,
// with the fastest jsonwebtoken setup (secret as a crypto KeyObject, algorithms pinned,
// audience and issuer checked). Prints one line with the port and a token to load with.
const crypto = require("node:crypto");
const express = require("express");
const cookieParser = require("cookie-parser");
const jwt = require("jsonwebtoken");

const secret = crypto.createSecretKey(crypto.randomBytes(32));
const iss = "https://127.0.0.1", aud = "https://127.0.0.1";
const now = Math.floor(Date.now() / 1000);
const token = jwt.sign(
  { sub: "HwrtQwkPmXles_xHpNNXAw", sid: "SoQMZkhBePC-MDGYLZppsA", jti: "w8sjVnhVls7VYwVP5e-qCw",
    roles: ["user", "demo"], username: "demo", nbf: now },
  secret,
  { algorithm: "HS256", expiresIn: 3600, issuer: iss, audience: aud, header: { typ: "at+jwt", kid: "k1" } },
);

const app = express();
app.disable("x-powered-by");
app.use(cookieParser());
app.get("/auth/verify", (req, res) => {
  const t = req.cookies["access"];
  if (!t) return res.status(401).json({ error: "unauthenticated" });
  try {
    const c = jwt.verify(t, secret, { algorithms: ["HS256"], issuer: iss, audience: aud });
    res.set("X-Tessera-User", c.sub).set("X-Tessera-Username", c.username)
      .set("X-Tessera-Roles", c.roles.join(",")).set("X-Tessera-Session", c.sid).status(200).end();
  } catch (e) {
    res.status(401).json({ error: "unauthenticated" });
  }
});
const server = app.listen(0, "127.0.0.1", () => {
  console.log(`node-peer port=${server.address().port} token=${token}`);
});
