// Runs tessera-js.mjs (the docs' tessera.js example) in Debian's headless Chromium, as a
// module of a page served by tessera: the example is served at ORIGIN/app/example.mjs by a
// Playwright route, so the page's CSP (script-src 'self') applies to it as to a real SPA.
// Prints what addNote() returned, as JSON.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const origin = process.env.ORIGIN;
const example = readFileSync(new URL("./tessera-js.mjs", import.meta.url), "utf8");
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.route(`${origin}/app/example.mjs`, (route) =>
    route.fulfill({ status: 200, contentType: "text/javascript", body: example }),
  );
  await page.goto(`${origin}/`);
  const result = await page.evaluate(
    async ([username, password]) => (await import("/app/example.mjs")).addNote(username, password, "hello from tessera.js"),
    [process.env.USERNAME, process.env.PASSWORD],
  );
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
