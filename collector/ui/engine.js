// The detection engine itself, in this browser: the `filter/web` build (wasm-bindgen, embedded
// by the collector under pkg/). Loaded once, on the first page that needs it. Every answer is
// the JSON document the `tollgate` CLI prints for the same input.

let loading = null;

/** The engine's exports: checkConfig, rules and requestTexts parsed; scan and analyzeRequest as
 *  the exact JSON text the CLI prints (parse it to read it). */
export function loadEngine() {
  loading ??= (async () => {
    let mod;
    try {
      mod = await import("./pkg/tollgate_web.js");
    } catch (err) {
      throw new Error("This collector was built without the engine's browser build: run `make web`, then rebuild the collector (`make collector`).");
    }
    await mod.default();
    return {
      version: mod.version(),
      checkConfig: (config) => JSON.parse(mod.check_config(config)),
      scan: (text, config) => mod.scan(text, config),
      analyzeRequest: (path, body, config) => mod.analyze_request(path, body, config),
      requestTexts: (path, body, config) => JSON.parse(mod.request_texts(path, body, config)),
      rules: (config) => JSON.parse(mod.rules(config)),
      raw: mod,
    };
  })();
  loading.catch(() => { loading = null; });
  return loading;
}

/** The configuration the playground and the rules page share (this tab only; empty: defaults). */
export const workspace = { config: "", mode: "text", path: "/v1/chat/completions", text: null, body: null };
