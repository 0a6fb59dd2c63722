// The REST half of docs/protocol.md: logging in, listing chats, reading history,
// downloading files. Every call but the first two carries the bearer token.

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `the server answered ${status}`);
    this.status = status;
    this.code = error?.code ?? "internal";
    this.fields = error?.fields ?? null;
  }
}

let token = null;

export function useToken(value) {
  token = value;
}

async function send(method, path, body) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { code: "network", message: "The server cannot be reached." });
  }
  return response;
}

async function request(method, path, body) {
  const response = await send(method, path, body);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data?.error);
  return data;
}

export const register = (username, password) =>
  request("POST", "/api/users", { username, password });

/** {token, username, expires_at} */
export const logIn = (username, password) =>
  request("POST", "/api/tokens", { username, password });

export const listChats = () => request("GET", "/api/chats");

const messagesPath = (chatId) => `/api/chats/${encodeURIComponent(chatId)}/messages`;

/** The oldest `limit` messages with seq > after. */
export const messagesAfter = (chatId, after, limit = 1000) =>
  request("GET", `${messagesPath(chatId)}?after=${after}&limit=${limit}`);

/** The newest `limit` messages with seq < before (the newest of all without it). */
export function messagesBefore(chatId, before, limit = 50) {
  const query = before ? `before=${before}&limit=${limit}` : `limit=${limit}`;
  return request("GET", `${messagesPath(chatId)}?${query}`);
}

/** A stored file's bytes, fetched with the token. */
async function fetchFile(file) {
  if (!file.url.startsWith("/api/files/")) throw new ApiError(400, { message: "not a file link" });
  const response = await send("GET", file.url);
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    throw new ApiError(response.status, data?.error);
  }
  return response.blob();
}

/** Fetch a file with the token and hand it to the browser as a download. */
export async function downloadFile(file) {
  const url = URL.createObjectURL(await fetchFile(file));
  const link = document.createElement("a");
  link.href = url;
  link.download = file.name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has its own copy once it starts; free ours a little later.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const previews = new Map(); // file_id -> Promise of a blob: URL, kept while the page lives

/**
 * A blob: URL of an image file, for an <img>: an <img src> cannot send the
 * token, so the page fetches the bytes itself (the policy allows blob: images).
 * The blob takes the type the sender declared, for the browser to decode it as.
 */
export function previewUrl(file) {
  if (!previews.has(file.file_id)) {
    const url = fetchFile(file).then((blob) => URL.createObjectURL(new Blob([blob], { type: file.type })));
    url.catch(() => previews.delete(file.file_id)); // failed: a later redraw tries again
    previews.set(file.file_id, url);
  }
  return previews.get(file.file_id);
}
