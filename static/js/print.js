// A "Print" button for printable pages; hidden until this script runs, since without it the
// button could do nothing.
document.querySelectorAll("[data-print]").forEach(function (button) {
  button.hidden = false;
  button.addEventListener("click", function () {
    window.print();
  });
});
