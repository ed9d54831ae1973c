import { api } from "./app.js";

export function start() {
  const form = document.getElementById("login-form");
  const error = form.querySelector(".error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const data = Object.fromEntries(new FormData(form));
    try {
      await api("POST", "/api/login", data);
      window.location.assign(form.dataset.next || "/");
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  });
}
