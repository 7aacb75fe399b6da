// /login: the form works without script; this only focuses the field.
const field = document.querySelector("input[name=token]");
if (field) field.focus();
