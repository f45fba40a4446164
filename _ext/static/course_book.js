// Search snippets from the article only. Sphinx's search (searchtools.js) builds a result's
// snippet from the text of the page's [role=main] element; in sphinx-book-theme that element
// also holds the header buttons (download menu: "exercise .ipynb .md .pdf"), the "on this
// page" list and the previous/next links, so a word it cannot find verbatim (a stemmed match)
// gave a snippet that was only those labels. Here the article alone is [role=main], without
// the exercise note this book adds under each chapter's title.
(function () {
  "use strict";
  function patch() {
    if (typeof Search === "undefined" || Search._articleOnly) return;
    const original = Search.htmlToText;
    Search.htmlToText = function (htmlString, anchor) {
      const doc = new DOMParser().parseFromString(htmlString, "text/html");
      const article = doc.querySelector("article.bd-article");
      if (article) {
        doc.querySelectorAll("[role=main]").forEach((el) => el.removeAttribute("role"));
        article.setAttribute("role", "main");
        article.querySelectorAll(".exercise-link").forEach((el) => el.remove());
        htmlString = doc.documentElement.outerHTML;
      }
      return original.call(Search, htmlString, anchor);
    };
    Search._articleOnly = true;
  }
  patch();
  document.addEventListener("DOMContentLoaded", patch);
})();
