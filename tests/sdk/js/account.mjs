// Calls every account method of the official JS SDK against creditgate and prints one JSON
// object; test_sdk_js.py starts the server, runs this and asserts the values.
import Firecrawl from "@mendable/firecrawl-js";

const apiUrl = process.env.CG_URL;
const fc = new Firecrawl({ apiKey: process.env.CG_KEY, apiUrl });
const out = {
  credit: await fc.getCreditUsage(),
  token: await fc.getTokenUsage(),
  historical: await fc.getCreditUsageHistorical(true),
  tokenHistorical: await fc.getTokenUsageHistorical(false),
  queue: await fc.getQueueStatus(),
  concurrency: await fc.getConcurrency(),
};
try {
  await new Firecrawl({ apiKey: "fc-" + "0".repeat(32), apiUrl }).getCreditUsage();
  out.invalid = "no error";
} catch (err) {
  out.invalid = { name: err.constructor.name, status: err.status ?? err.statusCode, message: err.message };
}
console.log(JSON.stringify(out));
