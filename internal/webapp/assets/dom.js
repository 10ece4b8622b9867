// dom.js: build DOM nodes without ever parsing HTML. Every string given
// as a child becomes a text node, so data from the network (a contact's
// name, a message body, a file name) can never become markup or script.

// h(tag, attrs, ...children) creates an element. attrs: plain attributes
// set with setAttribute, except "class" (className), "on<event>"
// (addEventListener with a function), "dataset" (object) and boolean
// properties given as true/false (disabled, checked, hidden...). Children
// may be nodes, strings, numbers, null/undefined/false (skipped) or
// arrays of those.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') {
        el.className = String(v);
      } else if (k === 'dataset') {
        for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
      } else if (k.startsWith('on') && typeof v === 'function') {
        el.addEventListener(k.slice(2).toLowerCase(), v);
      } else if (k === 'style') {
        throw new Error('dom.h: inline styles are refused by the CSP; use a class');
      } else if (k === 'innerHTML' || k === 'outerHTML') {
        throw new Error('dom.h: ' + k + ' is not allowed');
      } else if (v === true) {
        el.setAttribute(k, '');
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  return el;
}

// append adds children (as for h) to el and returns el.
export function append(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// clear removes every child of el and returns el.
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// replace clears el and appends children.
export function replace(el, ...children) {
  return append(clear(el), ...children);
}

// fmtTime formats a date string or Date for display ("" for none).
export function fmtTime(t) {
  if (!t) return '';
  const d = t instanceof Date ? t : new Date(t);
  if (isNaN(d)) return '';
  return d.toLocaleString();
}
