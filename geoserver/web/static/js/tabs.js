// The panel's views as tabs (WAI-ARIA tabs pattern): arrow keys, Home and End move between tabs, each view names
// the page title.

import { t } from "./i18n.js";

export class Tabs {
  /** Tabs of `tablist`; `onChange(name)` after a view is shown. */
  constructor(tablist, onChange = () => {}) {
    this.tablist = tablist;
    this.onChange = onChange;
    this.current = null;
    for (const tab of this.tablist.querySelectorAll('[role="tab"]')) {
      tab.addEventListener("click", () => this.show(nameOf(tab)));
      tab.addEventListener("keydown", (event) => this.key(event, tab));
    }
    const selected = this.tabs().find((tab) => tab.getAttribute("aria-selected") === "true");
    this.show(nameOf(selected || this.tabs()[0]));
  }

  tabs() {
    return [...this.tablist.querySelectorAll('[role="tab"]')].filter((tab) => !tab.hidden);
  }

  /** Show the view `name` (and, with `focus`, move focus to its tab). */
  show(name, { focus = false } = {}) {
    for (const tab of this.tablist.querySelectorAll('[role="tab"]')) {
      const on = nameOf(tab) === name;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      document.getElementById(tab.getAttribute("aria-controls")).hidden = !on;
      if (on && focus) tab.focus();
    }
    this.current = name;
    this.retitle();
    this.onChange(name);
  }

  /** The page title: the view's name, then the application's. */
  retitle() {
    document.title = `${t(`view.${this.current}`)} – ${t("app.title")}`;
  }

  key(event, tab) {
    const tabs = this.tabs();
    const at = tabs.indexOf(tab);
    const next = {
      ArrowRight: tabs[(at + 1) % tabs.length],
      ArrowLeft: tabs[(at - 1 + tabs.length) % tabs.length],
      Home: tabs[0],
      End: tabs[tabs.length - 1],
    }[event.key];
    if (!next) return;
    event.preventDefault();
    this.show(nameOf(next), { focus: true });
  }
}

function nameOf(tab) {
  return tab.id.replace(/^tab-/, "");
}
