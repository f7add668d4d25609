// Talking to the service: the login session, signed calls, the {code, msg, data} envelope, and chunked
// picture uploads. Every failure becomes an ApiError carrying the envelope's code, msg and data.
"use strict";

(function (global) {
  const BASE = "/zhugeleida/admin/";
  const SESSION_KEY = "zgld.console.session";
  const CHUNK_BYTES = 512 * 1024;

  class ApiError extends Error {
    constructor(code, msg, data) {
      super(msg);
      this.code = code;
      this.msg = msg;
      this.data = data || {};
    }
  }

  let session = null;
  try {
    session = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
  } catch (e) {
    session = null;
  }

  // A signed POST is accepted once per (path, timestamp): never hand out the same millisecond twice.
  let lastTimestamp = 0;
  function nextTimestamp() {
    lastTimestamp = Math.max(Date.now(), lastTimestamp + 1);
    return String(lastTimestamp);
  }

  function signedQuery(extra, timestamp) {
    if (!session) throw new ApiError(400, "请先登录", {});
    const ts = timestamp || nextTimestamp();
    const query = new URLSearchParams({rand_str: md5(ts + session.token), timestamp: ts, user_id: session.user_id});
    for (const [key, value] of Object.entries(extra || {})) {
      if (value !== undefined && value !== null && value !== "") query.set(key, value);
    }
    return query;
  }

  function envelope(status, text) {
    let body;
    try {
      body = JSON.parse(text);
    } catch (e) {
      throw new ApiError(status || 0, `服务器返回了无法识别的内容 (HTTP ${status})`, {});
    }
    if (body.code !== 200) throw new ApiError(body.code, body.msg, body.data);
    return body;
  }

  // form: an object sent form-encoded, as the existing clients send it (lists as JSON text).
  // timestamp: sign with this one instead of a fresh one (the upload calls share theirs).
  async function call(method, path, {query = {}, form = null, signed = true, timestamp = null} = {}) {
    const params = signed ? signedQuery(query, timestamp) : new URLSearchParams(query);
    const options = {method, headers: {}};
    if (form) {
      const body = new URLSearchParams();
      for (const [key, value] of Object.entries(form)) {
        body.set(key, typeof value === "object" ? JSON.stringify(value) : String(value));
      }
      options.body = body;
    } else if (method === "POST") {
      options.body = "";
    }
    let response;
    try {
      response = await fetch(`${BASE}${path}?${params}`, options);
    } catch (e) {
      throw new ApiError(0, "无法连接服务器，请检查网络", {});
    }
    return envelope(response.status, await response.text());
  }

  const get = (path, query) => call("GET", path, {query});
  const post = (path, form, query) => call("POST", path, {form: form || {}, query});

  async function login(username, password) {
    const body = await call("POST", "login", {form: {username, password}, signed: false});
    session = body.data;
    localStorage.setItem(SESSION_KEY, JSON.stringify(session));
    return body;
  }

  // modify_password answers a new token: every later call signs with it. The user chose their own
  // password, so the console stops asking for one.
  function passwordChanged(token) {
    session = {...session, token, is_reset_password: false};
    localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  }

  function forget() {
    session = null;
    localStorage.removeItem(SESSION_KEY);
  }

  async function logout() {
    try {
      return await post("logout");
    } finally {
      forget();
    }
  }

  // One POST of raw bytes with upload progress (fetch reports none), answered with the envelope.
  function sendBytes(url, blob, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.onprogress = (event) => onProgress(event.loaded);
      xhr.onload = () => {
        try {
          resolve(envelope(xhr.status, xhr.responseText));
        } catch (e) {
          reject(e);
        }
      };
      xhr.onerror = () => reject(new ApiError(0, "上传中断，请检查网络", {}));
      xhr.send(blob);
    });
  }

  // Uploads `file` in chunks, then completes it. One timestamp is the upload's id: every chunk and the
  // completing call are signed with it. onProgress(fraction) runs as bytes go out. Answers {picture_id,
  // picture_url}.
  async function uploadPicture(file, pictureType, onProgress) {
    const timestamp = nextTimestamp();
    const chunkNum = Math.max(1, Math.ceil(file.size / CHUNK_BYTES));
    const total = Math.max(1, file.size);
    for (let chunk = 0; chunk < chunkNum; chunk++) {
      const start = chunk * CHUNK_BYTES;
      const query = signedQuery({img_name: file.name, timestamp, chunk}, timestamp);
      await sendBytes(`${BASE}product/add_picture/0?${query}`, file.slice(start, start + CHUNK_BYTES),
        (loaded) => onProgress(Math.min(1, (start + loaded) / total) * 0.95));
    }
    const body = await call("POST", "product/upload_complete/0",
      {query: {img_name: file.name, timestamp, chunk_num: chunkNum, picture_type: pictureType}, timestamp});
    onProgress(1);
    return body.data.ret_data;
  }

  global.Api = {
    ApiError, get, post, login, logout, forget, passwordChanged, uploadPicture, signedQuery,
    get session() { return session; },
    get isAdmin() { return !!session && Number(session.role_id) === 1; },
  };
})(window);
