// Stand-in for the ComfyUI frontend's scripts/api.js: fetchApi under /api, websocket messages
// {type, data} dispatched as CustomEvent(type, {detail: data}), as the real api does for custom events.
class FakeApi extends EventTarget {
  constructor() {
    super();
    this.connected = new Promise((resolve) => {
      this.socket = new WebSocket(`ws://${location.host}/ws`);
      this.socket.addEventListener("open", () => resolve());
      this.socket.addEventListener("message", (message) => {
        const { type, data } = JSON.parse(message.data);
        this.dispatchEvent(new CustomEvent(type, { detail: data }));
      });
    });
  }

  apiURL(route) {
    return `/api${route}`;
  }

  fetchApi(route, options) {
    return fetch(this.apiURL(route), options);
  }
}

export const api = new FakeApi();
window.__api = api;
