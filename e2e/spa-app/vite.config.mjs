// Vite's production build with its defaults (hashed files under assets/, the
// modulepreload polyfill, CSS extracted to a file); only tessera.js is left external:
// tessera serves it at /tessera.js on the same origin.
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  logLevel: "warn",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    rollupOptions: { external: ["/tessera.js"] },
  },
});
