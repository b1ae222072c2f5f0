// The "Try it" form: choosing another endpoint puts its example request in the request box,
// unless the box holds something the person typed. The form works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const data = document.getElementById("try-examples");
  const select = document.getElementById("field-endpoint");
  const request = document.getElementById("field-request");
  if (!data || !select || !request) return;
  let examples;
  try { examples = JSON.parse(data.textContent); } catch (_) { return; }
  let previous = select.value;
  select.addEventListener("change", () => {
    const before = examples[previous];
    if (request.value.trim() === "" || (before !== undefined && request.value.trim() === before.trim())) {
      request.value = examples[select.value] || "{}";
    }
    previous = select.value;
  });
});
