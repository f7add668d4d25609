// The console's screens: login, dashboard, products (list, form with chunked picture uploads), users, roles,
// companies and the audit trail (操作记录). Screens are chosen by the location hash (#/dashboard, #/products, ...). Every element is
// built with h(), never from HTML text, so names typed by users can never become markup.
"use strict";

(function () {
  const PAGE_LENGTH = 10;
  const METRICS = [
    ["customer_num", "客户总数"], ["follow_num", "跟进总数"], ["browse_num", "浏览总数"],
    ["forward_num", "被转发总数"], ["saved_total_num", "被保存总数"], ["praise_sum", "被点赞总数"],
  ];
  const WINDOWS = [
    ["count_data", "累计"], ["yesterday_data", "昨日"], ["nearly_seven_days", "近7天"],
    ["nearly_thirty_days", "近30天"],
  ];
  const HOME_FIGURES = [
    ["company_name", "公司名称"], ["username", "当前用户"], ["mingpian_num", "名片数量"], ["user_count", "用户数"],
    ["customer_num", "客户数"], ["open_up_date", "开通日期"], ["expired_time", "到期日期"],
    ["available_days", "剩余天数"], ["used_days", "已用天数"],
  ];
  const PRODUCT_TYPES = [[1, "官网产品"], [2, "个人产品"]];
  const USER_STATUSES = [[1, "启用"], [2, "未启用"]];
  const BUILTIN_ROLES = [[1, "管理员"], [2, "普通用户"]];
  // The kinds of target the audit trail records (GET audit's kind filter).
  const AUDIT_KINDS = [["user", "用户"], ["role", "角色"], ["company", "公司"], ["product", "产品"],
    ["activity", "客户活动"], ["data", "数据"]];
  // Labels for the fields a 303 answer names.
  const FIELD_LABELS = {
    name: "名称", price: "价格", reason: "推荐理由", product_type: "产品类型", cover_picture_id: "封面图片",
    article_data: "产品介绍", status: "状态", login_name: "登录名", username: "姓名", password: "密码",
    role_id: "角色", position: "职位", phone: "电话", company_id: "公司", mingpian_available_num: "名片数量",
    expire_date: "到期日期", img_name: "文件名", img_data: "图片", chunk: "分片", chunk_num: "分片数", picture_type: "图片类型",
    old_password: "当前密码", new_password: "新密码", kind: "对象类型",
    target_id: "对象ID", start_date: "开始日期", end_date: "结束日期", length: "每页条数",
  };

  const app = document.getElementById("app");
  const notice = document.getElementById("notice");

  // ---- building elements -------------------------------------------------------------------------

  // h("button", {class: "x", onclick: fn}, "text", child, [more children]); null children are skipped.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "value") el.value = value;
      else el.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child !== null && child !== undefined && child !== false) el.append(child);
    }
    return el;
  }

  // parent.append without the empty children (append would write them as the text "null").
  const add = (parent, ...children) => parent.append(...children.filter((c) => c !== null && c !== undefined));

  const options = (pairs, selected) => pairs.map(([value, label]) =>
    h("option", {value, selected: String(value) === String(selected)}, label));

  // A labelled input: spec {name, label, type, options, required, value, placeholder}.
  function field(spec, value) {
    const common = {name: spec.name, required: spec.required, placeholder: spec.placeholder};
    let input;
    if (spec.type === "select") {
      input = h("select", common, spec.blank ? h("option", {value: ""}, spec.blank) : null,
        options(spec.options, value));
    } else if (spec.type === "textarea") {
      input = h("textarea", {...common, rows: 3}, value ?? "");
    } else {
      input = h("input", {...common, type: spec.type || "text", value: value ?? "", min: spec.min,
        autocomplete: spec.autocomplete || "off"});
    }
    return h("label", {class: "field"}, h("span", {}, spec.label), input);
  }

  const formValues = (form) => Object.fromEntries(new FormData(form).entries());

  function button(label, onclick, kind) {
    return h("button", {type: "button", class: kind || "secondary", onclick: guard(onclick)}, label);
  }

  // ---- notices and errors ------------------------------------------------------------------------

  let noticeTimer = null;

  function showNotice(kind, text, details) {
    clearTimeout(noticeTimer);
    const list = details && details.length ? h("ul", {}, details.map((d) => h("li", {}, d))) : "";
    notice.replaceChildren(h("span", {class: "notice-text"}, text), list,
      h("button", {type: "button", class: "close", "aria-label": "关闭", onclick: () => { notice.hidden = true; }}, "×"));
    notice.className = kind;
    notice.hidden = false;
    if (kind === "ok") noticeTimer = setTimeout(() => { notice.hidden = true; }, 4000);
  }

  const showOk = (msg) => showNotice("ok", msg);

  // A 303's messages per field ("价格：不能为空"), or [] for other answers.
  function fieldMessages(error) {
    if (error.code !== 303 || !error.data || typeof error.data !== "object") return [];
    return Object.entries(error.data).map(([key, msgs]) => `${FIELD_LABELS[key] || key}：${[].concat(msgs).join("，")}`);
  }

  // Every failure is shown with the envelope's message and code; a 303 also lists each field's messages.
  function showError(error) {
    if (!(error instanceof Api.ApiError)) {
      console.error(error);
      return showNotice("error", `页面出错：${error.message || error}`);
    }
    showNotice("error", `${error.msg}（代码 ${error.code}）`, fieldMessages(error));
    if (error.code === 400 || error.code === 306) {  // the token no longer signs: log in again
      Api.forget();
      forgetScreens();
      render();
    }
  }

  // Wraps an event handler or loader: errors are shown, never lost in the console.
  function guard(fn) {
    return async (...args) => {
      try {
        return await fn(...args);
      } catch (error) {
        showError(error);
      }
    };
  }

  // A loader whose result is drawn only if no later call started meanwhile (quick clicks never show an older
  // answer over a newer one). Errors are shown like guard's.
  function latestOnly(load, draw) {
    let calls = 0;
    return guard(async (...args) => {
      const call = ++calls;
      const result = await load(...args);
      if (call === calls) draw(result);
    });
  }

  const confirmDialog = document.getElementById("confirm");

  function confirmAction(text) {
    confirmDialog.querySelector(".confirm-text").textContent = text;
    confirmDialog.returnValue = "";
    confirmDialog.showModal();
    return new Promise((resolve) => {
      confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue === "ok"), {once: true});
    });
  }

  // ---- routing -----------------------------------------------------------------------------------

  const SCREENS = [
    {path: "dashboard", label: "首页", view: dashboard},
    {path: "products", label: "产品管理", view: products},
    {path: "users", label: "用户管理", view: users},
    {path: "roles", label: "角色管理", view: roles, admin: true},
    {path: "companies", label: "公司管理", view: companies, admin: true},
    {path: "audit", label: "操作记录", view: auditTrail, admin: true},
  ];

  function go(hash) {
    if (location.hash === hash) render();
    else location.hash = hash;
  }

  function render() {
    if (!Api.session) return loginView();
    if (Api.session.is_reset_password) return newPasswordView();
    const [path, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
    let screen = SCREENS.find((s) => s.path === path && (!s.admin || Api.isAdmin));
    if (!screen) {
      screen = SCREENS[0];
      history.replaceState(null, "", "#/dashboard");
    }
    // data-view names what is drawn (e.g. "products/new"), so a test can wait for the very view it means.
    const view = screen.path === path ? [path, ...rest].join("/") : screen.path;
    const main = h("main", {id: "main", "data-screen": screen.path, "data-view": view});
    app.replaceChildren(header(screen), main);
    guard(screen.view)(main, ...rest);
  }

  function header(current) {
    const session = Api.session;
    return h("header", {class: "top"},
      h("div", {class: "brand"}, "诸葛雷达 · 管理后台"),
      h("div", {class: "who"},
        h("span", {class: "company"}, session.company_name),
        h("span", {class: "user"}, `${session.username}（${session.role_name}）`),
        button("退出", logout, "link")),
      h("nav", {}, SCREENS.filter((s) => !s.admin || Api.isAdmin).map((s) =>
        h("a", {href: `#/${s.path}`, class: s === current ? "active" : null}, s.label))));
  }

  // What one login remembered (filters, pages, companies) is not shown to the next.
  function forgetScreens() {
    for (const key of Object.keys(remembered)) delete remembered[key];
    companyCache = null;
  }

  async function logout() {
    try {
      const body = await Api.logout();
      showOk(body.msg);
    } finally {
      forgetScreens();
      history.replaceState(null, "", "#/");
      render();
    }
  }

  function loginView() {
    const error = h("p", {class: "form-error", role: "alert"});
    const form = h("form", {class: "card login", onsubmit: async (event) => {
      event.preventDefault();
      const {username, password} = formValues(form);
      error.textContent = "";
      try {
        await Api.login(username, password);
        notice.hidden = true;
        go("#/dashboard");
      } catch (e) {
        if (!(e instanceof Api.ApiError)) throw e;
        error.textContent = `${e.msg}（代码 ${e.code}）`;
      }
    }},
    h("h1", {}, "诸葛雷达 · 管理后台"),
    field({name: "username", label: "登录名", required: true, autocomplete: "username"}),
    field({name: "password", label: "密码", type: "password", required: true, autocomplete: "current-password"}),
    error,
    h("button", {type: "submit", class: "primary"}, "登录"));
    app.replaceChildren(h("main", {id: "main", class: "login-page", "data-screen": "login", "data-view": "login"}, form));
  }

  // After an administrator reset the password, nothing else until the user has chosen their own.
  function newPasswordView() {
    const error = h("p", {class: "form-error", role: "alert"});
    const form = h("form", {class: "card login", onsubmit: guard(async (event) => {
      event.preventDefault();
      const values = formValues(form);
      error.textContent = "";
      if (values.new_password !== values.repeated) {
        error.textContent = "两次输入的新密码不一致";
        return;
      }
      const body = await Api.post("modify_password", {old_password: values.old_password,
        new_password: values.new_password});
      Api.passwordChanged(body.data.token);
      showOk("密码已修改");
      go("#/dashboard");
    })},
    h("h1", {}, "请设置新密码"),
    h("p", {}, "管理员重置了您的密码。继续使用前，请设置一个只有您自己知道的新密码。"),
    field({name: "old_password", label: "当前密码", type: "password", required: true, autocomplete: "current-password"}),
    field({name: "new_password", label: "新密码", type: "password", required: true, autocomplete: "new-password"}),
    field({name: "repeated", label: "确认新密码", type: "password", required: true, autocomplete: "new-password"}),
    error,
    h("div", {class: "actions"}, button("退出", logout), h("button", {type: "submit", class: "primary"}, "保存")));
    app.replaceChildren(h("main", {id: "main", class: "login-page", "data-screen": "password", "data-view": "password"},
      form));
  }

  // ---- shared pieces: tables, paging, the company picker -----------------------------------------

  // columns: [[label, row => text or node]]; each cell carries its label for the phone layout.
  function table(columns, rows, empty, className) {
    if (!rows.length) return h("p", {class: "empty"}, empty || "暂无数据");
    return h("table", {class: className || "data"},
      h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", {}, label)))),
      h("tbody", {}, rows.map((row) => h("tr", {},
        columns.map(([label, cell]) => h("td", {"data-label": label}, cell(row) ?? ""))))));
  }

  function pager(page, count, onPage) {
    const pages = Math.max(1, Math.ceil(count / PAGE_LENGTH));
    return h("div", {class: "pager"},
      h("button", {type: "button", class: "secondary", disabled: page <= 1, onclick: () => onPage(page - 1)}, "上一页"),
      h("span", {class: "page-info"}, `第 ${page} / ${pages} 页，共 ${count} 条`),
      h("button", {type: "button", class: "secondary", disabled: page >= pages, onclick: () => onPage(page + 1)},
        "下一页"));
  }

  // Companies for an administrator's pickers; [] if the list cannot be had (the picker is then left out).
  let companyCache = null;
  async function companyChoices() {
    if (!Api.isAdmin) return [];
    if (!companyCache) {
      try {
        const body = await Api.get("company", {current_page: 1, length: 100});
        companyCache = body.data.ret_data.map((c) => [c.id, c.name]);
      } catch (e) {
        return [];
      }
    }
    return companyCache;
  }

  // Roles for pickers. Only administrators may list them; the others filter by the two built-in roles.
  async function roleChoices() {
    if (!Api.isAdmin) return BUILTIN_ROLES;
    const body = await Api.get("role", {current_page: 1, length: 100});
    return body.data.ret_data.map((r) => [r.id, r.name]);
  }

  // A list screen: filters, a table, paging. spec: {key, filters, columns(reload), query(), toolbar(reload),
  // path}. Filters and page are remembered per key, so coming back from a form keeps the user's place.
  const remembered = {};

  function listScreen(main, spec) {
    const state = remembered[spec.key] || (remembered[spec.key] = {page: 1, filters: {}});
    const results = h("div", {class: "results"});
    const load = latestOnly(() => Api.get(spec.path, {...state.filters, ...(spec.query ? spec.query() : {}),
      current_page: state.page, length: PAGE_LENGTH}), (body) => {
      results.replaceChildren(table(spec.columns(load), body.data.ret_data),
        pager(state.page, body.data.data_count, (page) => { state.page = page; load(); }));
    });
    const filterForm = h("form", {class: "filters", onsubmit: (event) => {
      event.preventDefault();
      state.filters = formValues(filterForm);
      state.page = 1;
      load();
    }}, spec.filters.map((f) => field(f, state.filters[f.name])), h("button", {type: "submit", class: "primary"}, "查询"));
    add(main, spec.toolbar ? spec.toolbar(load) : null, filterForm, results);
    load();
    return load;
  }

  // An add/edit form in a panel above a list. fields: specs; values: the row being edited or {}.
  function editPanel(title, fields, values, onSave) {
    const panel = h("section", {class: "card panel"});
    const form = h("form", {class: "grid-form", onsubmit: guard(async (event) => {
      event.preventDefault();
      await onSave(formValues(form));
      panel.remove();
    })}, h("h2", {}, title), fields.map((f) => field(f, values[f.name])),
    h("div", {class: "actions"}, button("取消", () => panel.remove()), h("button", {type: "submit", class: "primary"},
      "保存")));
    panel.append(form);
    return panel;
  }

  function showPanel(main, panel) {
    main.querySelector(".panel")?.remove();
    main.prepend(panel);
    panel.querySelector("input, select, textarea")?.focus();
  }

  async function deleteRow(path, id, name, reload) {
    if (!(await confirmAction(`确定删除“${name}”吗？此操作不能撤销。`))) return;
    const body = await Api.post(`${path}/delete/${id}`);
    showOk(body.msg);
    reload();
  }

  // ---- dashboard ---------------------------------------------------------------------------------

  async function dashboard(main) {
    const chosen = remembered.dashboard || (remembered.dashboard = {company_id: "", days: 7, index_type: 1});
    const scope = () => (chosen.company_id ? {company_id: chosen.company_id} : {});
    const figures = h("section", {class: "card"}, h("h2", {}, "企业概况"));
    const overview = h("section", {class: "card"}, h("h2", {}, "数据概览"));
    const trend = h("section", {class: "card"}, h("h2", {}, "数据趋势"));
    const companies = await companyChoices();
    const picker = companies.length ? h("div", {class: "toolbar"}, field({name: "company_id", label: "公司",
      type: "select", blank: "本公司", options: companies}, chosen.company_id)) : null;
    picker?.querySelector("select").addEventListener("change", (event) => {
      chosen.company_id = event.target.value;
      render();
    });
    add(main, h("h1", {}, "首页"), picker, figures, overview, trend);

    guard(async () => {
      const home = (await Api.get("home_page", scope())).data.ret_data;
      figures.append(h("dl", {class: "figures"}, HOME_FIGURES.map(([key, label]) =>
        h("div", {class: "figure"}, h("dt", {}, label), h("dd", {"data-key": key}, String(home[key] ?? "—"))))));
    })();
    guard(async () => {
      const windows = (await Api.get("home_page/acount_data", scope())).data.ret_data;
      overview.append(table([["指标", ([, label]) => label],
        ...WINDOWS.map(([key, label]) => [label, ([metric]) => String(windows[key]?.[metric] ?? 0)])], METRICS, "",
      "data overview"));
    })();

    const chartBox = h("div", {class: "chart-box"});
    const drawChart = latestOnly(async () => {
      const {days, index_type} = chosen;
      const body = await Api.post("home_page/line_info", {days, index_type, ...scope()});
      return {points: body.data.ret_data, label: `${METRICS[index_type - 1][1]}（近${days}天）`};
    }, ({points, label}) => chartBox.replaceChildren(Charts.lineChart(points, label, chartBox.clientWidth)));
    const dayButtons = [7, 15].map((days) => h("button", {type: "button", "data-days": days,
      class: days === chosen.days ? "primary" : "secondary", onclick: () => {
        chosen.days = days;
        dayButtons.forEach((b) => { b.className = Number(b.dataset.days) === days ? "primary" : "secondary"; });
        drawChart();
      }}, `近${days}天`));
    const metricSelect = h("select", {name: "index_type", "aria-label": "指标", onchange: (event) => {
      chosen.index_type = Number(event.target.value);
      drawChart();
    }}, options(METRICS.map(([, label], i) => [i + 1, label]), chosen.index_type));
    trend.append(h("div", {class: "toolbar"}, h("div", {class: "segmented"}, dayButtons), metricSelect), chartBox);
    drawChart();
  }

  // ---- products ----------------------------------------------------------------------------------

  // mayChange: the caller may edit, shelve and delete these (company products need an administrator).
  function productColumns(reload, mayChange) {
    return [
      ["封面", (p) => p.cover_picture ? h("img", {class: "thumb", src: "/" + p.cover_picture, alt: ""}) :
        h("span", {class: "no-picture"}, "无")],
      ["名称", (p) => p.name],
      ["价格", (p) => p.price],
      ["发布者", (p) => p.publisher],
      ["发布时间", (p) => p.publisher_date],
      ["状态", (p) => h("span", {class: `badge status-${p.status_code}`}, p.status)],
      mayChange ? ["操作", (p) => h("div", {class: "row-actions"},
        button("编辑", () => go(`#/products/edit/${p.product_id}`)),
        button(p.status_code === 2 ? "上架" : "下架", async () => {
          const body = await Api.post(`product/change_status/${p.product_id}`, {status: p.status_code === 2 ? 1 : 2});
          showOk(`${body.msg}：${p.name} ${body.data.status}`);
          reload();
        }),
        button("删除", () => deleteRow("product", p.product_id, p.name, reload), "danger"))] : null,
    ].filter(Boolean);
  }

  async function products(main, action, id) {
    if (action === "new" || action === "edit") return productForm(main, action === "edit" ? id : null);
    const state = remembered.products || (remembered.products = {page: 1, filters: {}, type: 1});
    const companies = await companyChoices();
    main.append(h("h1", {}, "产品管理"));
    listScreen(main, {
      key: "products",
      path: "product/product_list",
      query: () => ({product_type: state.type}),
      filters: [
        {name: "product_name", label: "产品名称", placeholder: "关键字"},
        {name: "status", label: "状态", type: "select", options: [[1, "已上架"], [2, "已下架"]]},
        companies.length ? {name: "company_id", label: "公司", type: "select", blank: "全部", options: companies} : null,
      ].filter(Boolean),
      columns: (reload) => productColumns(reload, Api.isAdmin || state.type === 2),
      toolbar: (reload) => h("div", {class: "toolbar"},
        h("div", {class: "segmented", role: "tablist"}, PRODUCT_TYPES.map(([type, label]) => h("button", {
          type: "button", role: "tab", class: type === state.type ? "primary" : "secondary",
          "aria-selected": String(type === state.type), onclick: () => {
            state.type = type;
            state.page = 1;
            render();
          }}, label))),
        button("新增产品", () => go("#/products/new"), "primary")),
    });
  }

  // product_single's answer, reduced to what the form edits. Covers: [{picture_id, picture_url}]; articles in
  // order: {kind: "picture", picture_id, picture_url} or {kind: "title" | "content", text, article_id}. (An
  // article another client gave both a title and a text is edited as its title; its text is sent back as it was.)
  function productFromSingle(p) {
    const picture = ({picture_id, picture_url}) => ({picture_id, picture_url});
    const article = (a) => {
      if (a.picture_id) return {kind: "picture", ...picture(a)};
      if (a.title !== null && a.title !== undefined) {
        return {kind: "title", text: a.title, article_id: a.article_id, content: a.content ?? undefined};
      }
      return {kind: "content", text: a.content ?? "", article_id: a.article_id};
    };
    return {product_type: p.product_type, name: p.name, price: p.price, reason: p.reason,
      covers: p.cover_pictures.map(picture),
      articles: [...p.article_data].sort((a, b) => a.order - b.order).map(article)};
  }

  const ARTICLE_KINDS = {title: "标题", content: "正文", picture: "图片"};

  // One article as add/update take it, at its place in the list.
  function articleItem(a, order) {
    const item = a.kind === "picture" ? {picture_id: a.picture_id} : {[a.kind]: a.text};
    if (a.kind === "title" && a.content !== undefined) item.content = a.content;
    if (a.article_id) item.article_id = a.article_id;
    return {...item, order};
  }

  // One file going up: a row with its name and a progress bar, replaced by the picture when done.
  async function uploadWithProgress(file, pictureType, into) {
    const bar = h("progress", {max: 100, value: 0});
    const status = h("span", {class: "upload-status"}, "上传中…");
    const row = h("div", {class: "upload", "data-file": file.name}, h("span", {class: "upload-name"}, file.name),
      bar, status);
    into.append(row);
    try {
      const picture = await Api.uploadPicture(file, pictureType, (fraction) => { bar.value = fraction * 100; });
      status.textContent = "已完成";
      row.classList.add("done");
      setTimeout(() => row.remove(), 1500);
      return picture;
    } catch (error) {
      const messages = error instanceof Api.ApiError ? fieldMessages(error) : [];
      status.textContent = `失败：${messages.length ? messages.join("；") : error.msg || error.message}`;
      row.classList.add("failed");
      throw error;
    }
  }

  function pictureInput(multiple, onFiles) {
    return h("input", {type: "file", accept: "image/jpeg,image/png,image/gif,image/webp", multiple,
      onchange: (event) => {
        const files = [...event.target.files];
        event.target.value = "";
        onFiles(files);
      }});
  }

  // Moves item i of list by delta (-1 up, +1 down), within bounds.
  function move(list, i, delta) {
    const j = i + delta;
    if (j < 0 || j >= list.length) return;
    [list[i], list[j]] = [list[j], list[i]];
  }

  async function productForm(main, id) {
    const product = id ? productFromSingle((await Api.get("product/product_single", {product_id: id})).data.ret_data) :
      {product_type: Api.isAdmin ? 1 : 2, covers: [], articles: []};
    const types = Api.isAdmin ? PRODUCT_TYPES : PRODUCT_TYPES.filter(([type]) => type === 2);

    const coverList = h("div", {class: "pictures"});
    const coverUploads = h("div", {class: "uploads"});
    const drawCovers = () => coverList.replaceChildren(...product.covers.map((c, i) => h("figure", {class: "picture"},
      h("img", {src: "/" + c.picture_url, alt: `封面 ${i + 1}`}),
      h("figcaption", {}, i === 0 ? "主封面" : `封面 ${i + 1}`,
        button("←", () => { move(product.covers, i, -1); drawCovers(); }),
        button("→", () => { move(product.covers, i, 1); drawCovers(); }),
        button("移除", () => { product.covers.splice(i, 1); drawCovers(); }, "danger")))));

    const articleList = h("ol", {class: "articles"});
    const drawArticles = () => articleList.replaceChildren(...product.articles.map((a, i) => {
      const kind = ARTICLE_KINDS[a.kind];
      const edit = (event) => { a.text = event.target.value; };
      let body;
      if (a.kind === "picture") body = h("img", {src: "/" + a.picture_url, alt: "介绍图片"});
      else if (a.kind === "title") body = h("input", {type: "text", value: a.text, "aria-label": kind, oninput: edit});
      else body = h("textarea", {rows: 3, "aria-label": kind, oninput: edit}, a.text);
      return h("li", {class: "article", "data-kind": kind}, h("span", {class: "kind"}, kind), body,
        h("div", {class: "row-actions"},
          button("上移", () => { move(product.articles, i, -1); drawArticles(); }),
          button("下移", () => { move(product.articles, i, 1); drawArticles(); }),
          button("删除", () => { product.articles.splice(i, 1); drawArticles(); }, "danger")));
    }));
    const articleUploads = h("div", {class: "uploads"});

    const uploadAll = (files, pictureType, into, add) => files.forEach(guard(async (file) => {
      add(await uploadWithProgress(file, pictureType, into));
    }));

    const form = h("form", {class: "card product-form", onsubmit: guard(async (event) => {
      event.preventDefault();
      const values = formValues(form);
      const payload = {
        product_type: values.product_type, name: values.name, price: values.price, reason: values.reason,
        cover_picture_id: product.covers.map((c) => c.picture_id),
        article_data: product.articles.map((a, i) => articleItem(a, i + 1)),
      };
      const body = await Api.post(id ? `product/update/${id}` : "product/add/0", payload);
      showOk(id ? "修改成功" : body.msg); // update answers the seed's 添加成功, which would read oddly here
      const listState = remembered.products || (remembered.products = {page: 1, filters: {}});
      listState.type = Number(values.product_type);
      go("#/products");
    })},
    h("h1", {}, id ? "编辑产品" : "新增产品"),
    h("div", {class: "grid-form"},
      field({name: "product_type", label: "产品类型", type: "select", options: types}, product.product_type),
      field({name: "name", label: "产品名称", required: true}, product.name),
      field({name: "price", label: "价格", required: true}, product.price),
      field({name: "reason", label: "推荐理由", type: "textarea", required: true}, product.reason)),
    h("fieldset", {class: "covers"}, h("legend", {}, "封面图片"), coverList,
      h("label", {class: "file-button"}, "上传封面", pictureInput(true, (files) =>
        uploadAll(files, 1, coverUploads, (picture) => { product.covers.push(picture); drawCovers(); }))),
      coverUploads),
    h("fieldset", {class: "intro"}, h("legend", {}, "产品介绍（按顺序显示）"), articleList,
      h("div", {class: "row-actions"},
        button("+ 标题", () => { product.articles.push({kind: "title", text: ""}); drawArticles(); }),
        button("+ 正文", () => { product.articles.push({kind: "content", text: ""}); drawArticles(); }),
        h("label", {class: "file-button"}, "+ 图片", pictureInput(true, (files) => uploadAll(files, 2, articleUploads,
          (picture) => { product.articles.push({kind: "picture", ...picture}); drawArticles(); })))),
      articleUploads),
    h("div", {class: "actions"}, button("取消", () => go("#/products")),
      h("button", {type: "submit", class: "primary"}, "保存")));
    drawCovers();
    drawArticles();
    main.append(form);
  }

  // ---- users, roles, companies -------------------------------------------------------------------

  async function users(main) {
    const [roleList, companies] = await Promise.all([roleChoices(), companyChoices()]);
    const userFields = (adding) => [
      {name: "login_name", label: "登录名", required: true},
      {name: "username", label: "姓名", required: true},
      adding ? {name: "password", label: "密码", type: "password", required: true, autocomplete: "new-password"} : null,
      {name: "role_id", label: "角色", type: "select", options: roleList},
      {name: "position", label: "职位"},
      {name: "phone", label: "电话", type: "tel"},
      {name: "status", label: "状态", type: "select", options: USER_STATUSES},
      adding && companies.length ? {name: "company_id", label: "公司", type: "select", options: companies} : null,
    ].filter(Boolean);
    const edit = (row, reload) => showPanel(main, editPanel(row ? `编辑用户：${row.username}` : "新增用户",
      userFields(!row), row || {role_id: 2, status: 1, company_id: Api.session.company_id}, async (values) => {
        const body = await Api.post(row ? `user/update/${row.id}` : "user/add/0", values);
        showOk(body.msg);
        reload();
      }));
    main.append(h("h1", {}, "用户管理"));
    listScreen(main, {
      key: "users",
      path: "user",
      filters: [
        {name: "username", label: "姓名", placeholder: "关键字"},
        {name: "role_id", label: "角色", type: "select", blank: "全部", options: roleList},
        {name: "status", label: "状态", type: "select", blank: "全部", options: USER_STATUSES},
        {name: "position", label: "职位"},
        companies.length ? {name: "company_id", label: "公司", type: "select", blank: "全部", options: companies} : null,
      ].filter(Boolean),
      toolbar: (reload) => Api.isAdmin ? h("div", {class: "toolbar"}, button("新增用户", () => edit(null, reload),
        "primary")) : null,
      columns: (reload) => [
        ["登录名", (u) => u.login_name], ["姓名", (u) => u.username], ["角色", (u) => u.role_name],
        ["职位", (u) => u.position], ["电话", (u) => u.phone], ["公司", (u) => u.company_name],
        ["状态", (u) => h("span", {class: `badge user-${u.status}`}, u.status_text)],
        ["最后登录", (u) => u.last_login_date || "—"],
        Api.isAdmin ? ["操作", (u) => h("div", {class: "row-actions"},
          button(u.status === 1 ? "禁用" : "启用", async () => {
            const body = await Api.post(`user/update_status/${u.id}`, {status: u.status === 1 ? 2 : 1});
            showOk(`${body.msg}：${u.username}`);
            reload();
          }),
          button("编辑", () => edit(u, reload)),
          u.id === Number(Api.session.user_id) ? null : button("重置密码", () => resetPassword(main, u)),
          button("删除", () => deleteRow("user", u.id, u.username, reload), "danger"))] : null,
      ].filter(Boolean),
    });
  }

  // A generated password is shown once, in a panel the administrator closes after passing it on.
  async function resetPassword(main, user) {
    if (!(await confirmAction(`重置“${user.username}”的密码？其已登录的设备需要重新登录。`))) return;
    const body = await Api.post(`user/reset_password/${user.id}`);
    showOk(`${body.msg}：${user.username}`);
    showPanel(main, h("section", {class: "card panel one-time-password"},
      h("h2", {}, `${user.username} 的新密码`),
      h("p", {}, h("output", {class: "password", "aria-label": "新密码"}, body.data.new_password)),
      h("p", {}, "请把它告知用户。它只显示这一次；用户登录后须立即设置自己的密码。"),
      h("div", {class: "actions"}, h("button", {type: "button", class: "primary",
        onclick: (event) => event.target.closest(".panel").remove()}, "知道了"))));
  }

  // Roles and companies: the same list-with-panel screen over different fields. changed() runs after every
  // add, edit or delete.
  function managedList(main, {title, path, noun, fields, filters, columns, nameOf, changed = () => {}}) {
    const edit = (row, reload) => showPanel(main, editPanel(row ? `编辑${noun}：${nameOf(row)}` : `新增${noun}`,
      fields, row || {}, async (values) => {
        const body = await Api.post(row ? `${path}/update/${row.id}` : `${path}/add/0`, values);
        showOk(body.msg);
        changed();
        reload();
      }));
    main.append(h("h1", {}, title));
    listScreen(main, {
      key: path, path, filters,
      toolbar: (reload) => h("div", {class: "toolbar"}, button(`新增${noun}`, () => edit(null, reload), "primary")),
      columns: (reload) => [...columns, ["操作", (row) => h("div", {class: "row-actions"},
        button("编辑", () => edit(row, reload)),
        button("删除", () => deleteRow(path, row.id, nameOf(row), () => { changed(); reload(); }), "danger"))]],
    });
  }

  function roles(main) {
    managedList(main, {
      title: "角色管理", path: "role", noun: "角色", nameOf: (r) => r.name,
      fields: [{name: "name", label: "角色名称", required: true}],
      filters: [{name: "name", label: "角色名称", placeholder: "关键字"}],
      columns: [["ID", (r) => String(r.id)], ["角色名称", (r) => r.name], ["用户数", (r) => String(r.user_count ?? "—")],
        ["创建时间", (r) => r.create_date]],
    });
  }

  function companies(main) {
    managedList(main, {
      title: "公司管理", path: "company", noun: "公司", nameOf: (c) => c.name, changed: () => { companyCache = null; },
      fields: [{name: "name", label: "公司名称", required: true},
        {name: "mingpian_available_num", label: "名片数量", type: "number", min: 0, required: true},
        {name: "expire_date", label: "到期日期", type: "date"}],
      filters: [{name: "name", label: "公司名称", placeholder: "关键字"}],
      columns: [["ID", (c) => String(c.id)], ["公司名称", (c) => c.name],
        ["名片数量", (c) => String(c.mingpian_available_num ?? "")], ["用户数", (c) => String(c.user_count ?? "—")],
        ["到期日期", (c) => c.expire_date || "—"], ["创建时间", (c) => c.create_date]],
    });
  }

  // ---- the audit trail -----------------------------------------------------------------------------

  // Who changed what, when and how it ended: every write through the API and the command line. Times and
  // dates are in the service's zone (stats.timezone), like every time it answers and reads.
  async function auditTrail(main) {
    const companies = await companyChoices();
    const kinds = Object.fromEntries(AUDIT_KINDS);
    main.append(h("h1", {}, "操作记录"));
    listScreen(main, {
      key: "audit",
      path: "audit",
      filters: [
        {name: "login_name", label: "登录名"},
        {name: "kind", label: "对象类型", type: "select", blank: "全部", options: AUDIT_KINDS},
        {name: "target_id", label: "对象ID", type: "number", min: 1},
        {name: "start_date", label: "开始日期", type: "date"},
        {name: "end_date", label: "结束日期", type: "date"},
        companies.length ? {name: "company_id", label: "公司", type: "select", blank: "全部", options: companies} : null,
      ].filter(Boolean),
      columns: () => [
        ["时间", (e) => e.time],
        ["用户", (e) => e.login_name || (e.user_id ? `#${e.user_id}` : "—")],
        ["操作", (e) => h("code", {}, e.route)],
        ["对象", (e) => `${kinds[e.kind] || e.kind}${e.target_id ? ` #${e.target_id}` : ""}`],
        ["结果", (e) => h("span", {class: `badge outcome-${e.code === 200 ? "ok" : "failed"}`},
          e.code === 200 ? "成功" : `失败（${e.code}）`)],
        ["地址", (e) => e.address || "—"],
      ],
    });
  }

  window.addEventListener("hashchange", render);
  render();
})();
