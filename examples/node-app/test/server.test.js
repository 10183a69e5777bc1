const test = require("node:test");
const assert = require("node:assert");
const { uptimeText } = require("../server.js");

test("uptime is human readable", () => {
  assert.strictEqual(uptimeText(60), "up 1 minute");
});
