// A mail catcher for the browser tests: an SMTP server on loopback that keeps every message,
// and an HTTP endpoint that lists them (GET /messages → [{from, to, data}]).
//
//   SMTP_PORT=2526 HTTP_PORT=2527 node e2e/smtp-catcher.mjs
import { createServer as createHttp } from "node:http";
import { createServer } from "node:net";

const smtpPort = Number(process.env.SMTP_PORT ?? 2526);
const httpPort = Number(process.env.HTTP_PORT ?? 2527);
const messages = [];

createServer((socket) => {
  let buffer = "";
  let inData = false;
  let mail = { from: "", to: [], data: "" };
  const reply = (line) => socket.write(`${line}\r\n`);
  socket.setEncoding("utf8");
  reply("220 catcher ESMTP");
  socket.on("data", (chunk) => {
    buffer += chunk;
    for (;;) {
      if (inData) {
        const end = buffer.indexOf("\r\n.\r\n");
        if (end < 0) return;
        mail.data = buffer.slice(0, end).replace(/\r\n\.\./g, "\r\n.");
        buffer = buffer.slice(end + 5);
        messages.push(mail);
        mail = { from: "", to: [], data: "" };
        inData = false;
        reply("250 OK: queued");
        continue;
      }
      const nl = buffer.indexOf("\r\n");
      if (nl < 0) return;
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 2);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === "EHLO") {
        socket.write("250-catcher\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
      } else if (verb === "HELO") reply("250 catcher");
      else if (verb === "MAIL") {
        mail.from = line.slice(10).trim();
        reply("250 OK");
      } else if (verb === "RCPT") {
        mail.to.push(line.slice(8).trim().replace(/^<|>$/g, ""));
        reply("250 OK");
      } else if (verb === "DATA") {
        inData = true;
        reply("354 End data with <CR><LF>.<CR><LF>");
      } else if (verb === "RSET") {
        mail = { from: "", to: [], data: "" };
        reply("250 OK");
      } else if (verb === "QUIT") {
        reply("221 Bye");
        socket.end();
        return;
      } else reply("250 OK");
    }
  });
  socket.on("error", () => socket.destroy());
}).listen(smtpPort, "127.0.0.1");

createHttp((req, res) => {
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify(req.url === "/messages" ? messages : []));
}).listen(httpPort, "127.0.0.1");
