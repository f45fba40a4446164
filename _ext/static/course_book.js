// Search snippets from the article only. Sphinx's search (searchtools.js) builds a result's
// snippet from the text of the page's [role=main] element; in sphinx-book-theme that element
// also holds the header buttons (download menu: "exercise .ipynb .md .pdf"), the "on this
// page" list and the previous/next links, so a word it cannot find verbatim (a stemmed match)
// gave a snippet that was only those labels. Here the article alone is [role=main], without
// the exercise note this book adds under each chapter's title. Formulas are shown as
// plain text ("n^-4/d", "α ≈ 4/d"), not as the TeX source MathJax would typeset.
(function () {
  "use strict";
  const SYMBOLS = {
    alpha: "α", beta: "β", gamma: "γ", delta: "δ", epsilon: "ε", eta: "η", theta: "θ",
    lambda: "λ", mu: "μ", pi: "π", rho: "ρ", sigma: "σ", tau: "τ", phi: "φ", chi: "χ",
    psi: "ψ", omega: "ω", Gamma: "Γ", Delta: "Δ", Sigma: "Σ", Phi: "Φ", ell: "ℓ",
    approx: "≈", le: "≤", leq: "≤", ge: "≥", geq: "≥", ne: "≠", neq: "≠", times: "×",
    cdot: "·", to: "→", rightarrow: "→", infty: "∞", propto: "∝", sim: "~", pm: "±",
    sum: "Σ", prod: "Π", partial: "∂", nabla: "∇", in: "∈", mid: "|", log: "log",
    exp: "exp", min: "min", max: "max", E: "E", ldots: "…", dots: "…",
  };
  // TeX to readable text: \alpha -> α, \frac{a}{b} -> a/b, braces and spacing dropped
  function plainMath(tex) {
    return tex
      .replace(/^\\[([]|\\[)\]]$/g, "")
      .replace(/\\frac\{([^{}]*)\}\{([^{}]*)\}/g, "($1)/($2)")
      .replace(/\\(?:mathrm|mathbf|mathbb|mathcal|text|operatorname)\{([^{}]*)\}/g, "$1")
      .replace(/\\([A-Za-z]+)/g, (m, name) => (name in SYMBOLS ? SYMBOLS[name] : ""))
      .replace(/\\[,;:! ]/g, " ")
      .replace(/[{}]/g, "")
      .replace(/\s+/g, " ")
      .trim();
  }
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
        article.querySelectorAll(".math").forEach((el) => {
          el.textContent = " " + plainMath(el.textContent) + " ";
        });
        htmlString = doc.documentElement.outerHTML;
      }
      return original.call(Search, htmlString, anchor);
    };
    Search._articleOnly = true;
  }
  patch();
  document.addEventListener("DOMContentLoaded", patch);
})();
