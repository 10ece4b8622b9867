// views/chat.js: the chat view (placeholder until its helper fills it).
import { h, replace } from '../dom.js';

// mount draws the view into el; it returns a function that undoes it.
export function mount(el, ctx) {
  replace(el, h('h1', null, 'chat'), h('p', { class: 'muted' }, 'This view is not built yet.'));
  return () => {};
}
