// Drives the official Firecrawl JS SDK through creditgate for tests/upstream/test_js_sdk.py:
// a scrape, a v1 crawl and a batch scrape; prints one JSON object (ids and the SDK's answers).
// Run with CG_SDK_DIR naming the folder the pinned SDK was installed into (in the cache).
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const entry = join(process.env.CG_SDK_DIR, "node_modules/@mendable/firecrawl-js/dist/index.js");
const { Firecrawl } = await import(pathToFileURL(entry).href);

const fc = new Firecrawl({ apiKey: process.env.CG_KEY, apiUrl: process.env.CG_URL });
const site = process.env.CG_SITE;
const doc = await fc.scrape(`${site}/page5.html`, { formats: ["markdown"] });
const crawl = await fc.v1.asyncCrawlUrl(`${site}/index.html`, { limit: 3, allowBackwardLinks: true });
const batch = await fc.startBatchScrape([`${site}/page6.html`, `${site}/page7.html`], { options: { formats: ["markdown"] } });
console.log(JSON.stringify({
  scrape: { creditsUsed: doc.metadata?.creditsUsed, markdown: doc.markdown },
  crawl: { success: crawl.success, id: crawl.id },
  batch: { id: batch.id },
}));
