// The workbench's only script. Every page works without it; it only makes some things nicer:
// choosing a probe face, dropping files onto a file field, and following an ingest job's progress.
"use strict";

function showFace(number) {
  document.querySelectorAll("[data-face-result]").forEach(function (section) {
    var chosen = section.getAttribute("data-face-result") === String(number);
    section.open = chosen;
    section.hidden = !chosen;
  });
  document.querySelectorAll("[data-face-link]").forEach(function (link) {
    if (link.getAttribute("data-face-link") === String(number)) {
      link.setAttribute("aria-current", "true");
    } else {
      link.removeAttribute("aria-current");
    }
  });
  document.querySelectorAll("svg rect[data-face]").forEach(function (rect) {
    rect.classList.toggle("chosen", rect.getAttribute("data-face") === String(number));
  });
}

// Pictures a browser shows by itself: the probe is then shown from the user's own file, not sent back.
var SHOWN_TYPES = ["image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/avif"];
var probeUrl = null;

// The search form: its answer is fetched and put in the page (no reload of the form, the styles and this
// script), so that the candidates appear as soon as the server has them. Without fetch, the form posts.
function enhanceSearchForm() {
  var form = document.getElementById("search-form");
  var results = document.getElementById("results");
  if (!form || !results || !window.fetch || !window.FormData) {
    return;
  }
  form.addEventListener("submit", function (event) {
    if (!form.checkValidity()) {
      return;
    }
    event.preventDefault();
    var started = performance.now();
    var file = form.querySelector("input[type=file]").files[0];
    var local = Boolean(file && window.URL && URL.createObjectURL && SHOWN_TYPES.indexOf(file.type) >= 0);
    var headers = { "X-Workbench-Fragment": "results" };
    if (local) {
      headers["X-Workbench-Preview"] = "local";
    }
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    results.setAttribute("aria-busy", "true");
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: headers,
    })
      .then(function (response) {
        document.body.setAttribute("data-search-answered-ms", String(Math.round(performance.now() - started)));
        if (response.redirected || !(response.headers.get("content-type") || "").startsWith("text/html")) {
          throw new Error("not a fragment");
        }
        return response.text();
      })
      .then(function (html) {
        // The answer is parsed out of the page and the crops it shows are decoded first: an image decoded
        // while it is in the page waits for the page's next frame, one decoded apart from it does not.
        var answer = document.createElement("template");
        answer.innerHTML = html;
        var preview = answer.content.querySelector("img[data-local-preview]");
        if (preview && local) {
          if (probeUrl) {
            URL.revokeObjectURL(probeUrl);
          }
          probeUrl = URL.createObjectURL(file);
          preview.src = probeUrl;
        }
        var shown = Array.prototype.slice.call(answer.content.querySelectorAll("details[open] img.crop"));
        return Promise.all(shown.map(function (img) {
          var copy = new Image();
          copy.src = img.getAttribute("src");
          return copy.decode().catch(function () {});
        })).then(function () {
          results.replaceChildren(answer.content);
          enhanceFacePicker();
          document.body.setAttribute("data-search-inserted-ms", String(Math.round(performance.now() - started)));
        });
      })
      .then(function () {
        document.body.setAttribute("data-search-ms", String(Math.round(performance.now() - started)));
        results.removeAttribute("aria-busy");
        button.disabled = false;
        results.focus();  // screen readers and keyboards continue from the answer
      })
      .catch(function () {
        button.disabled = false;
        form.submit();  // the plain way: the whole page
      });
  });
}

function enhanceFacePicker() {
  var links = document.querySelectorAll("[data-face-link]");
  if (!links.length) {
    return;
  }
  links.forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      showFace(link.getAttribute("data-face-link"));
    });
  });
}

function enhanceDropzones() {
  document.querySelectorAll("[data-dropzone]").forEach(function (zone) {
    var input = zone.querySelector("input[type=file]");
    if (!input) {
      return;
    }
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("over");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () {
        zone.classList.remove("over");
      });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
      }
    });
  });
}

function followProgress() {
  var box = document.querySelector("[data-progress]");
  if (!box || box.getAttribute("data-finished") === "true") {
    return;
  }
  var url = box.getAttribute("data-progress");
  var bar = box.querySelector("progress");
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (job) {
        bar.max = Math.max(job.files_total, 1);
        bar.value = job.files_done;
        ["status", "files_done", "files_total", "faces"].forEach(function (field) {
          var target = box.querySelector("[data-field=" + field + "]");
          if (target) {
            target.textContent = job[field];
          }
        });
        if (job.finished) {
          window.location.reload();
        } else {
          window.setTimeout(poll, 700);
        }
      })
      .catch(function () { window.setTimeout(poll, 2000); });
  }
  poll();
}

document.addEventListener("DOMContentLoaded", function () {
  enhanceFacePicker();
  enhanceSearchForm();
  enhanceDropzones();
  followProgress();
});
