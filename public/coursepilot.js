// CoursePilot: open a source in the side panel only when the learner clicks it.
// Chainlit 2.11+ force-opens the element side panel, listing every side element of the thread, whenever a
// message with display="side" elements arrives (https://github.com/Chainlit/chainlit/issues/2979, no opt-out
// yet). This closes a panel that opened without a click on a source link; clicked sources stay open.
(function () {
  var lastClick = 0;
  var clickedTitle = null;

  document.addEventListener(
    "click",
    function (event) {
      var link = event.target && event.target.closest ? event.target.closest("a.element-link") : null;
      if (link) {
        lastClick = Date.now();
        clickedTitle = null;
      }
    },
    true
  );

  function check() {
    var title = document.getElementById("side-view-title");
    if (!title) {
      return;
    }
    var text = title.textContent || "";
    if (Date.now() - lastClick < 2000) {
      clickedTitle = text;
      return;
    }
    if (clickedTitle !== null && text === clickedTitle) {
      return;
    }
    var close = title.querySelector("button");
    if (close) {
      clickedTitle = null;
      close.click();
    }
  }

  new MutationObserver(check).observe(document.documentElement, { childList: true, subtree: true });
})();
