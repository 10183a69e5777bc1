// A tiny HTTP server with one production dependency.
const http = require("http");
const ms = require("ms");

function uptimeText(seconds) {
  return `up ${ms(seconds * 1000, { long: true })}`;
}

if (require.main === module) {
  if (process.argv.includes("--once")) {
    console.log(uptimeText(90));
  } else {
    http
      .createServer((_, res) => res.end(uptimeText(process.uptime()) + "\n"))
      .listen(3000);
  }
}

module.exports = { uptimeText };
