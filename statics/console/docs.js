// The API reference (/docs): reads /openapi.json, shows every operation with its parameters, body fields
// and answers, and lets a signed-in person send one (signed here with the console's session, api.js).
"use strict";

(function () {
  const view = document.querySelector("main[data-view=docs]");

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") el.className = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (value !== undefined && value !== null && value !== false) el.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  // "integer 1..2147483647", "string ≤ 128", "1 | 2", "JSON text: array"
  function describeSchema(schema) {
    if (!schema) return "";
    if (schema.enum) return schema.enum.join(" | ");
    if (schema.contentMediaType === "application/json") return "JSON 文本：" + describeSchema(schema.contentSchema);
    if (schema.anyOf) return schema.anyOf.map(describeSchema).join(" 或 ");
    const limits = [];
    if (schema.minimum !== undefined) limits.push(`${schema.minimum}..${schema.maximum}`);
    if (schema.maxLength !== undefined) limits.push(`${schema.minLength || 0}..${schema.maxLength} 字`);
    if (schema.maxItems !== undefined) limits.push(`≤ ${schema.maxItems} 项`);
    if (schema.format) limits.push(schema.format);
    return [schema.type || "", ...limits].join(" ");
  }

  // The fields a person may fill in: [{name, where, required, schema}]
  function fieldsOf(operation) {
    const fields = (operation.parameters || []).map((p) => ({name: p.name, where: p.in, required: p.required,
      schema: p.schema}));
    const content = (operation.requestBody || {}).content || {};
    const form = content["application/x-www-form-urlencoded"];
    if (form) {
      const required = form.schema.required || [];
      for (const [name, schema] of Object.entries(form.schema.properties || {})) {
        fields.push({name, where: "body", required: required.includes(name), schema});
      }
    }
    return fields;
  }

  function fieldTable(fields) {
    if (!fields.length) return h("p", {}, "没有参数。");
    return h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "参数"), h("th", {}, "位置"), h("th", {}, "类型与范围"),
        h("th", {}, "必填"))),
      h("tbody", {}, fields.map((f) => h("tr", {}, h("td", {}, h("code", {}, f.name)), h("td", {}, f.where),
        h("td", {}, describeSchema(f.schema)), h("td", {}, f.required ? "是" : "")))));
  }

  function answerCodes(operation) {
    return Object.entries(operation.responses).map(([status, answer]) => {
      const schema = ((answer.content || {})["application/json"] || {}).schema || {};
      const codes = ((schema.properties || {}).code || {}).enum;
      return h("li", {}, `HTTP ${status}: `, codes ? `code ${codes.join(", ")}` : answer.description);
    });
  }

  // A JSON body from the form's text: numbers for integer fields, lists parsed from their JSON text.
  function jsonValue(field, text) {
    if (field.schema && field.schema.type === "integer" && /^-?\d+$/.test(text.trim())) return Number(text);
    if (field.schema && field.schema.contentMediaType === "application/json") {
      try {
        return JSON.parse(text);
      } catch (e) {
        return text;
      }
    }
    return text;
  }

  async function send(method, path, operation, fields, inputs, encoding, output) {
    const values = {};
    fields.forEach((f, i) => {
      if (inputs[i].value !== "") values[f.name] = {field: f, text: inputs[i].value};
    });
    let url = path;
    const query = {};
    const body = {};
    for (const [name, {field, text}] of Object.entries(values)) {
      if (field.where === "path") url = url.replace(`{${name}}`, encodeURIComponent(text));
      else if (field.where === "query") query[name] = text;
      else body[name] = {field, text};
    }
    let params;
    try {
      params = operation.security && operation.security.length ? Api.signedQuery(query) : new URLSearchParams(query);
    } catch (e) {  // not signed in
      output.textContent = `${e.msg || e.message}（需要签名：请先登录）`;
      return;
    }
    const options = {method: method.toUpperCase(), headers: {}};
    if (options.method === "POST") {
      if (encoding === "json") {
        options.headers["Content-Type"] = "application/json";
        options.body = JSON.stringify(Object.fromEntries(Object.entries(body).map(
          ([name, {field, text}]) => [name, jsonValue(field, text)])));
      } else {
        options.body = new URLSearchParams(Object.entries(body).map(([name, {text}]) => [name, text]));
      }
    }
    output.textContent = "发送中…";
    try {
      const response = await fetch(`${url}?${params}`, options);
      const text = await response.text();
      let shown = text;
      try {
        shown = JSON.stringify(JSON.parse(text), null, 2);
      } catch (e) { /* not JSON: show as it came */ }
      output.textContent = `HTTP ${response.status}\n${shown}`;
    } catch (e) {
      output.textContent = e.message || String(e);
    }
  }

  function tryForm(method, path, operation, fields) {
    const inputs = fields.map((f) => h("input", {name: f.name, "aria-label": f.name,
      placeholder: describeSchema(f.schema)}));
    const output = h("pre", {class: "answer", hidden: true});
    const content = (operation.requestBody || {}).content || {};
    const encoding = h("select", {"aria-label": "请求体格式"},
      ...Object.keys(content).filter((kind) => kind !== "application/octet-stream" && kind !== "multipart/form-data")
        .map((kind) => h("option", {value: kind === "application/json" ? "json" : "form"}, kind)));
    const button = h("button", {type: "button", class: "send", onclick: () => {
      output.hidden = false;
      send(method, path, operation, fields, inputs, encoding.value, output);
    }}, "发送");
    return h("div", {},
      h("div", {class: "try"},
        fields.flatMap((f, i) => [h("label", {}, h("code", {}, f.name), f.required ? " *" : ""), inputs[i]]),
        encoding.options.length ? [h("label", {}, "请求体"), encoding] : null,
        h("div", {class: "actions"}, button)),
      output);
  }

  function operationCard(path, method, operation) {
    const fields = fieldsOf(operation);
    const signed = operation.security && operation.security.length;
    return h("details", {class: "operation", "data-path": path, "data-method": method},
      h("summary", {},
        h("span", {class: `method ${method}`}, method.toUpperCase()),
        h("span", {class: "path"}, path),
        h("span", {class: "summary"}, operation.summary),
        signed ? null : h("span", {class: "locked"}, "无需签名")),
      h("div", {class: "body"},
        operation.description ? h("p", {}, operation.description) : null,
        fieldTable(fields),
        h("ul", {class: "codes"}, answerCodes(operation)),
        tryForm(method, path, operation, fields)));
  }

  function loginBox() {
    const box = view.querySelector(".docs-login");
    box.replaceChildren();
    const session = Api.session;
    if (session) {
      box.append(`已登录：${session.username}（user_id ${session.user_id}），调用将自动签名。`,
        h("button", {type: "button", class: "secondary", onclick: () => { Api.forget(); loginBox(); }}, "退出"));
      return;
    }
    const username = h("input", {name: "username", placeholder: "用户名", "aria-label": "用户名"});
    const password = h("input", {name: "password", type: "password", placeholder: "密码", "aria-label": "密码"});
    const message = h("span", {class: "error"});
    box.append("登录后可以试用需要签名的接口：", username, password,
      h("button", {type: "button", onclick: async () => {
        try {
          await Api.login(username.value, password.value);
          loginBox();
        } catch (e) {
          message.textContent = `${e.msg || e.message}（${e.code}）`;
        }
      }}, "登录"), message);
  }

  function render(document_) {
    const list = view.querySelector(".docs-operations");
    const byTag = new Map();
    for (const [path, methods] of Object.entries(document_.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        const tag = (operation.tags || ["other"])[0];
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push(operationCard(path, method, operation));
      }
    }
    list.replaceChildren(...[...byTag].flatMap(([tag, cards]) => [h("h2", {class: "tag"}, tag), ...cards]));
    const filter = view.querySelector(".docs-filter");
    filter.addEventListener("input", () => {
      const words = filter.value.trim().toLowerCase();
      for (const card of list.querySelectorAll("details.operation")) {
        card.hidden = words !== "" && !card.textContent.toLowerCase().includes(words);
      }
    });
  }

  async function start() {
    loginBox();
    try {
      const response = await fetch("/openapi.json");
      render(await response.json());
    } catch (e) {
      view.querySelector(".docs-operations").textContent = `无法读取 /openapi.json：${e.message}`;
    }
  }

  start();
})();
