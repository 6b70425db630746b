// The recovery codes page: a button that copies the codes with the Clipboard API. It stays
// hidden where the API is missing (a page not served over HTTPS or localhost): the codes can
// still be selected, or downloaded with the link beside it.
const button = document.querySelector("button[data-copy]");
const status = document.getElementById("copy-status");

if (button && navigator.clipboard) {
  const list = document.getElementById(button.dataset.copy);
  button.hidden = false;
  button.addEventListener("click", async () => {
    const codes = [...list.querySelectorAll("code")].map((code) => code.textContent);
    try {
      await navigator.clipboard.writeText(codes.join("\n") + "\n");
      status.textContent = "Copied. Paste them somewhere safe.";
    } catch {
      status.textContent = "Your browser did not allow copying: select the codes, or download them.";
    }
  });
}
