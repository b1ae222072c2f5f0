// The published npm `m3o` client as its users write it, pointed at a self-hosted platform
// (the README's recipe). Run by tests/client/test_published_node_client.py:
//
//   M3O_API_TOKEN=<key> M3O_ADDRESS=http://127.0.0.1:8080/ node helloworld.js <scenario>
//
// Scenarios: `calls` (a call and a stream through `m3o`, a call through `@m3o/m3o-node`'s
// Client with `address`), `stream` (one stream: what a refused one does to the process).
// Prints one JSON document on stdout; the process must end by itself, exit code 0.
"use strict";

const { Client } = require("@m3o/m3o-node");

const token = process.env.M3O_API_TOKEN;
const address = process.env.M3O_ADDRESS; // with its trailing slash: the client appends "v1/..."

// `m3o`'s services always build their client for api.m3o.com: point each at our address.
const m3o = require("m3o").default(token);
for (const service of Object.values(m3o)) {
  service.client.options.address = address;
}

// A stream's messages, once it ends. The client calls onClose with
// Error("closed with error " + reason): the reason is empty when the stream ended normally
// and the error document (M3O's JSON) when it was refused.
function messages(stream) {
  return new Promise((resolve, reject) => {
    const received = [];
    let code = null;
    stream.conn.on("close", (closeCode) => {
      code = closeCode;
    });
    stream.onMessage((message) => received.push(message));
    stream.onError(reject);
    stream.onClose((error) => {
      const reason = error.message.replace(/^closed with error /, "");
      if (reason === "") {
        resolve(received);
      } else {
        reject({ code, error: JSON.parse(reason) });
      }
    });
  });
}

async function calls() {
  const call = await m3o.helloworld.call({ name: "Alice" });
  const streamed = await messages(await m3o.helloworld.stream({ name: "Bob", messages: 3 }));
  const generic = new Client({ token, address });
  const direct = await generic.call("helloworld", "Call", { name: "Carol" });
  return { call, streamed, direct };
}

async function stream() {
  try {
    return { streamed: await messages(await m3o.helloworld.stream({ name: "Dan", messages: 1 })) };
  } catch (refused) {
    return { refused };
  }
}

const scenarios = { calls, stream };

scenarios[process.argv[2]]().then(
  (result) => {
    process.stdout.write(JSON.stringify({ ...result, alive: true }) + "\n");
  },
  (error) => {
    process.stdout.write(JSON.stringify({ failed: error.message || error }) + "\n");
    process.exitCode = 2;
  },
);
