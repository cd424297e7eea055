/* Haechi citizen portal: alerts for a district in five languages, disaster mode, shelters,
   hazard reports, live updates over SSE. Plain JS, no build step. */
"use strict";

const API = "/api/v1";
const LANGS = { ko: "ko-KR", en: "en-US", zh: "zh-CN", ja: "ja-JP", vi: "vi-VN" };

const T = {
  ko: {
    busyReport: "지금 신고가 몰려 {s}초 뒤에 자동으로 다시 보냅니다. 이 창을 닫지 마세요.", busyRead: "지금 접속이 많아 {s}초 뒤에 다시 불러옵니다…",
    subscribeTitle: "이 지역 경보 받기", subscribeHelp: "이 창을 열어 두면 새 경보를 알림으로 받습니다. 피드 구독 앱에는 아래 주소를 넣으세요.", notifyOn: "알림 켜기", notifyOff: "알림 끄기", notifyOnNow: "이 지역의 새 경보를 알림으로 알려 드립니다.", notifyDenied: "브라우저가 알림을 허용하지 않았습니다. 피드를 구독하세요.", feedLink: "경보 피드 (Atom)", photo: "사진 (선택)", photoHelp: "JPEG, PNG, WebP · 8MB 이하", photoFailed: "신고는 접수되었지만 사진을 올리지 못했습니다: ", route: "가는 길", routeRoad: "도로 경로", routeStraight: "직선 거리 (도로망 정보 없음)", minutes: "분",
    skip: "본문으로 건너뛰기", title: "해치 시민 안전 포털", language: "언어",
    disasterTitle: "재난 모드: 지금 행동하세요", areaTitle: "지역 선택", district: "자치구",
    choose: "선택하세요", useLocation: "내 위치 사용", alertsTitle: "현재 경보", audience: "행동요령 대상",
    aud_general: "모든 시민", aud_elderly: "어르신", aud_children: "어린이", aud_disabled: "장애인",
    aud_foreigners: "외국인", pickArea: "지역을 먼저 선택하세요.", sheltersTitle: "가까운 대피소",
    reportTitle: "위험 신고하기", kind: "종류", k_sinkhole: "땅꺼짐(싱크홀)", k_crack: "균열",
    k_flooding: "침수", k_blocked_drain: "막힌 배수구", k_other: "기타", description: "설명",
    location: "위치", mapHelp: "지도를 눌러 위치를 고르거나, 내 위치를 사용하거나, 좌표를 입력하세요.",
    lat: "위도", lon: "경도", token: "API 토큰 (필요한 경우)", submit: "신고 보내기",
    footer: "긴급 상황: 119 (화재·구조·구급), 112 (경찰) · 다산콜센터 120",
    loading: "불러오는 중…", noAlerts: "이 지역에 현재 발령된 경보가 없습니다.",
    whatToDo: "행동요령", fullInstruction: "전체 행동요령 보기", sent: "발송",
    noShelters: "이 지역의 대피소 정보가 아직 없습니다. 안내 방송과 공무원의 지시를 따르고, 도움이 필요하면 120 또는 119에 연락하세요.",
    locating: "위치를 찾는 중…", locFailed: "위치를 찾을 수 없습니다. 목록에서 자치구를 고르세요.",
    locFound: "현재 위치: ", outside: "현재 위치가 서울 자치구 안에 있지 않습니다.",
    reportOk: "신고가 접수되었습니다. 접수 번호: ", reportFailed: "신고를 보내지 못했습니다.",
    live: "실시간 경보 수신 중", liveOff: "실시간 연결이 끊겼습니다. 다시 연결하는 중…",
    mapUnavailable: "지도를 불러올 수 없습니다. 좌표를 직접 입력하세요.", loadFailed: "정보를 불러오지 못했습니다: ",
    nearestShelter: "가장 가까운 대피소: ", call119: "위급하면 119에 전화하세요.", mapLabel: "신고 위치 지도",
    interest: "관심", caution: "주의", alert: "경계", serious: "심각", meters: "m",
  },
  en: {
    busyReport: "Many people are reporting right now: your report will be sent again by itself in {s} s. Please keep this page open.", busyRead: "Many people are using the service right now: loading again in {s} s…",
    subscribeTitle: "Get alerts for this area", subscribeHelp: "Keep this page open to be notified of new alerts; or add the feed below to a feed reader.", notifyOn: "Turn on notifications", notifyOff: "Turn off notifications", notifyOnNow: "You will be notified of new alerts for this area.", notifyDenied: "The browser did not allow notifications. Subscribe to the feed instead.", feedLink: "Alert feed (Atom)", photo: "Photo (optional)", photoHelp: "JPEG, PNG or WebP, up to 8 MB", photoFailed: "The report was received but the photo could not be sent: ", route: "Route", routeRoad: "by road", routeStraight: "straight line (no road map loaded)", minutes: "min",
    skip: "Skip to content", title: "Haechi citizen safety portal", language: "Language",
    disasterTitle: "Disaster mode: act now", areaTitle: "Choose your area", district: "District",
    choose: "Choose…", useLocation: "Use my location", alertsTitle: "Current alerts", audience: "Guidance for",
    aud_general: "Everyone", aud_elderly: "Older people", aud_children: "Children", aud_disabled: "People with disabilities",
    aud_foreigners: "Foreign residents and visitors", pickArea: "Choose an area first.", sheltersTitle: "Nearest shelters",
    reportTitle: "Report a hazard", kind: "Kind", k_sinkhole: "Sinkhole", k_crack: "Crack",
    k_flooding: "Flooding", k_blocked_drain: "Blocked drain", k_other: "Other", description: "Description",
    location: "Location", mapHelp: "Click the map to choose the place, use your location, or type the coordinates.",
    lat: "Latitude", lon: "Longitude", token: "API token (if needed)", submit: "Send report",
    footer: "Emergencies: 119 (fire, rescue, ambulance), 112 (police) · Dasan Call Center 120",
    loading: "Loading…", noAlerts: "No alerts are in force for this area.",
    whatToDo: "What to do", fullInstruction: "Show all guidance", sent: "Sent",
    noShelters: "No shelter information for this area yet. Follow announcements and officials' instructions; call 120, or 119 if you need help.",
    locating: "Finding your location…", locFailed: "Could not find your location. Choose a district from the list.",
    locFound: "Your location: ", outside: "Your location is not inside a Seoul district.",
    reportOk: "Thank you, your report was received. Number: ", reportFailed: "The report could not be sent.",
    live: "Receiving live alerts", liveOff: "Live connection lost. Reconnecting…",
    mapUnavailable: "The map could not be loaded. Type the coordinates instead.", loadFailed: "Could not load: ",
    nearestShelter: "Nearest shelter: ", call119: "In an emergency call 119.", mapLabel: "Map of the report location",
    interest: "Interest", caution: "Caution", alert: "Alert", serious: "Serious", meters: "m",
  },
  zh: {
    busyReport: "当前报告人数较多，将在 {s} 秒后自动重新提交您的报告。请不要关闭此页面。", busyRead: "当前访问人数较多，{s} 秒后重新加载…",
    subscribeTitle: "接收本地区警报", subscribeHelp: "保持此页面打开即可收到新警报通知；也可将下方订阅源添加到阅读器。", notifyOn: "开启通知", notifyOff: "关闭通知", notifyOnNow: "将通知您本地区的新警报。", notifyDenied: "浏览器未允许通知。请订阅警报源。", feedLink: "警报订阅源 (Atom)", photo: "照片（可选）", photoHelp: "JPEG、PNG 或 WebP，不超过 8 MB", photoFailed: "报告已收到，但照片未能上传：", route: "路线", routeRoad: "道路路线", routeStraight: "直线距离（未加载道路数据）", minutes: "分钟",
    skip: "跳到主要内容", title: "Haechi 市民安全门户", language: "语言",
    disasterTitle: "灾害模式：请立即行动", areaTitle: "选择地区", district: "区",
    choose: "请选择…", useLocation: "使用我的位置", alertsTitle: "当前警报", audience: "行动指南对象",
    aud_general: "所有市民", aud_elderly: "老年人", aud_children: "儿童", aud_disabled: "残障人士",
    aud_foreigners: "外国居民和游客", pickArea: "请先选择地区。", sheltersTitle: "最近的避难所",
    reportTitle: "报告危险", kind: "类型", k_sinkhole: "地面塌陷", k_crack: "裂缝",
    k_flooding: "积水", k_blocked_drain: "排水口堵塞", k_other: "其他", description: "说明",
    location: "位置", mapHelp: "点击地图选择位置，或使用我的位置，或输入坐标。",
    lat: "纬度", lon: "经度", token: "API 令牌（如需要）", submit: "提交报告",
    footer: "紧急情况：119（火灾、救援、急救），112（警察）· 茶山呼叫中心 120",
    loading: "加载中…", noAlerts: "该地区目前没有生效的警报。",
    whatToDo: "行动指南", fullInstruction: "查看全部指南", sent: "发布",
    noShelters: "该地区暂无避难所信息。请听从广播和工作人员的指示；需要帮助请拨打 120 或 119。",
    locating: "正在定位…", locFailed: "无法获取位置。请从列表中选择区。",
    locFound: "当前位置：", outside: "您的位置不在首尔的区内。",
    reportOk: "已收到您的报告。编号：", reportFailed: "报告未能发送。",
    live: "正在接收实时警报", liveOff: "实时连接中断，正在重新连接…",
    mapUnavailable: "无法加载地图，请直接输入坐标。", loadFailed: "无法加载：",
    nearestShelter: "最近的避难所：", call119: "紧急情况请拨打 119。", mapLabel: "报告位置地图",
    interest: "关注", caution: "注意", alert: "警戒", serious: "严重", meters: "米",
  },
  ja: {
    busyReport: "現在、通報が集中しています。{s} 秒後に自動で再送信します。このページを閉じないでください。", busyRead: "現在アクセスが集中しています。{s} 秒後に再読み込みします…",
    subscribeTitle: "この地域の警報を受け取る", subscribeHelp: "このページを開いておくと新しい警報を通知します。フィードリーダーには下のフィードを登録してください。", notifyOn: "通知をオンにする", notifyOff: "通知をオフにする", notifyOnNow: "この地域の新しい警報をお知らせします。", notifyDenied: "ブラウザが通知を許可しませんでした。フィードを購読してください。", feedLink: "警報フィード (Atom)", photo: "写真（任意）", photoHelp: "JPEG・PNG・WebP、8 MB まで", photoFailed: "通報は受け付けましたが、写真を送れませんでした：", route: "経路", routeRoad: "道路経路", routeStraight: "直線距離（道路データなし）", minutes: "分",
    skip: "本文へスキップ", title: "ヘチ 市民安全ポータル", language: "言語",
    disasterTitle: "災害モード：今すぐ行動してください", areaTitle: "地域を選ぶ", district: "区",
    choose: "選択してください…", useLocation: "現在地を使う", alertsTitle: "現在の警報", audience: "行動の手引きの対象",
    aud_general: "すべての人", aud_elderly: "高齢者", aud_children: "子ども", aud_disabled: "障害のある方",
    aud_foreigners: "外国人住民・旅行者", pickArea: "まず地域を選んでください。", sheltersTitle: "近くの避難所",
    reportTitle: "危険を通報する", kind: "種類", k_sinkhole: "陥没（シンクホール）", k_crack: "ひび割れ",
    k_flooding: "浸水", k_blocked_drain: "排水口の詰まり", k_other: "その他", description: "説明",
    location: "場所", mapHelp: "地図をクリックして場所を選ぶか、現在地を使うか、座標を入力してください。",
    lat: "緯度", lon: "経度", token: "APIトークン（必要な場合）", submit: "通報を送る",
    footer: "緊急時：119（火災・救助・救急）、112（警察）・ダサンコールセンター 120",
    loading: "読み込み中…", noAlerts: "この地域に現在発表中の警報はありません。",
    whatToDo: "取るべき行動", fullInstruction: "すべての手引きを見る", sent: "発表",
    noShelters: "この地域の避難所情報はまだありません。放送や職員の指示に従い、助けが必要なら 120 または 119 に連絡してください。",
    locating: "現在地を確認中…", locFailed: "現在地が分かりません。一覧から区を選んでください。",
    locFound: "現在地：", outside: "現在地はソウルの区内ではありません。",
    reportOk: "通報を受け付けました。受付番号：", reportFailed: "通報を送れませんでした。",
    live: "リアルタイムで警報を受信中", liveOff: "接続が切れました。再接続中…",
    mapUnavailable: "地図を読み込めません。座標を入力してください。", loadFailed: "読み込めませんでした：",
    nearestShelter: "最寄りの避難所：", call119: "緊急時は 119 に電話してください。", mapLabel: "通報場所の地図",
    interest: "関心", caution: "注意", alert: "警戒", serious: "深刻", meters: "m",
  },
  vi: {
    busyReport: "Hiện có nhiều người đang báo cáo: báo cáo của bạn sẽ được tự động gửi lại sau {s} giây. Vui lòng giữ trang này mở.", busyRead: "Hiện có nhiều người truy cập: sẽ tải lại sau {s} giây…",
    subscribeTitle: "Nhận cảnh báo cho khu vực này", subscribeHelp: "Giữ trang này mở để nhận thông báo cảnh báo mới; hoặc thêm nguồn tin dưới đây vào ứng dụng đọc tin.", notifyOn: "Bật thông báo", notifyOff: "Tắt thông báo", notifyOnNow: "Bạn sẽ được thông báo khi có cảnh báo mới cho khu vực này.", notifyDenied: "Trình duyệt không cho phép thông báo. Hãy đăng ký nguồn tin.", feedLink: "Nguồn tin cảnh báo (Atom)", photo: "Ảnh (không bắt buộc)", photoHelp: "JPEG, PNG hoặc WebP, tối đa 8 MB", photoFailed: "Đã nhận báo cáo nhưng không gửi được ảnh: ", route: "Đường đi", routeRoad: "theo đường bộ", routeStraight: "đường thẳng (chưa có bản đồ đường)", minutes: "phút",
    skip: "Chuyển đến nội dung", title: "Cổng an toàn công dân Haechi", language: "Ngôn ngữ",
    disasterTitle: "Chế độ thảm họa: hãy hành động ngay", areaTitle: "Chọn khu vực", district: "Quận",
    choose: "Chọn…", useLocation: "Dùng vị trí của tôi", alertsTitle: "Cảnh báo hiện tại", audience: "Hướng dẫn dành cho",
    aud_general: "Mọi người", aud_elderly: "Người cao tuổi", aud_children: "Trẻ em", aud_disabled: "Người khuyết tật",
    aud_foreigners: "Người nước ngoài và du khách", pickArea: "Hãy chọn khu vực trước.", sheltersTitle: "Nơi trú ẩn gần nhất",
    reportTitle: "Báo cáo nguy hiểm", kind: "Loại", k_sinkhole: "Hố sụt", k_crack: "Vết nứt",
    k_flooding: "Ngập nước", k_blocked_drain: "Cống bị tắc", k_other: "Khác", description: "Mô tả",
    location: "Vị trí", mapHelp: "Nhấn vào bản đồ để chọn vị trí, dùng vị trí của bạn, hoặc nhập tọa độ.",
    lat: "Vĩ độ", lon: "Kinh độ", token: "Mã API (nếu cần)", submit: "Gửi báo cáo",
    footer: "Khẩn cấp: 119 (cháy, cứu hộ, cấp cứu), 112 (cảnh sát) · Tổng đài Dasan 120",
    loading: "Đang tải…", noAlerts: "Hiện không có cảnh báo nào cho khu vực này.",
    whatToDo: "Cần làm gì", fullInstruction: "Xem toàn bộ hướng dẫn", sent: "Gửi lúc",
    noShelters: "Chưa có thông tin nơi trú ẩn cho khu vực này. Hãy làm theo thông báo và hướng dẫn của nhân viên; gọi 120, hoặc 119 nếu cần giúp đỡ.",
    locating: "Đang tìm vị trí…", locFailed: "Không tìm được vị trí. Hãy chọn quận trong danh sách.",
    locFound: "Vị trí của bạn: ", outside: "Vị trí của bạn không nằm trong quận nào của Seoul.",
    reportOk: "Đã nhận báo cáo của bạn. Số: ", reportFailed: "Không gửi được báo cáo.",
    live: "Đang nhận cảnh báo trực tiếp", liveOff: "Mất kết nối trực tiếp. Đang kết nối lại…",
    mapUnavailable: "Không tải được bản đồ. Hãy nhập tọa độ.", loadFailed: "Không tải được: ",
    nearestShelter: "Nơi trú ẩn gần nhất: ", call119: "Khi khẩn cấp hãy gọi 119.", mapLabel: "Bản đồ vị trí báo cáo",
    interest: "Quan tâm", caution: "Chú ý", alert: "Cảnh giác", serious: "Nghiêm trọng", meters: "m",
  },
};

const $ = (id) => document.getElementById(id);
const state = {
  lang: "ko", audience: "general", area: "", areas: [], point: null,
  current: [], details: new Map(), shelters: [], map: null, outline: null, marker: null,
};
const t = (key) => (T[state.lang] && T[state.lang][key]) || T.en[key] || key;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (v != null) node.setAttribute(k, v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

// ── a busy server ─────────────────────────────────────────────────────────────────────
// On a disaster day the server sheds load: 429 (too many reports from one address, often a whole
// carrier's NAT) or 503 (too many readers at once), each with Retry-After. The page waits that long
// and tries again, telling the citizen, instead of failing; a bounded number of times, so a server
// that stays down is still reported.
const MAX_RETRIES = 8;
const MAX_WAIT_S = 60;
const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

function retryAfterSeconds(res) {
  if (res.status !== 429 && res.status !== 503) return null;
  const value = res.headers.get("Retry-After");
  if (value == null) return null;  // a 503 without it (the database is down) is not a wait
  let seconds = Number(value);
  if (!Number.isFinite(seconds)) seconds = (Date.parse(value) - Date.now()) / 1000;  // an HTTP date
  return Number.isFinite(seconds) ? Math.min(MAX_WAIT_S, Math.max(1, Math.ceil(seconds))) : null;
}

async function fetchPatiently(url, options, onWait) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(url, options);
    const wait = retryAfterSeconds(res);
    if (wait == null || attempt >= MAX_RETRIES) return res;
    onWait(wait);
    await sleep(wait);
  }
}

const busyText = (key, seconds) => t(key).replace("{s}", String(seconds));
let readsWaiting = 0;
function busyBanner() {
  let banner = $("busy-status");
  if (!banner) {
    banner = el("p", { id: "busy-status", class: "status", role: "status" });
    $("main").prepend(banner);
  }
  return banner;
}

async function getJSON(path) {
  // Revalidated each time (an unchanged answer is a 304 from the server's memory): the stream says
  // when something changed, and the browser must not answer from its own copy (max-age) then.
  let waited = false;
  let res;
  try {
    res = await fetchPatiently(API + path, { headers: { Accept: "application/json" }, cache: "no-cache" }, (s) => {
      if (!waited) { waited = true; readsWaiting++; }
      const banner = busyBanner();
      banner.textContent = busyText("busyRead", s);
      banner.hidden = false;
    });
  } finally {
    if (waited && --readsWaiting === 0) busyBanner().hidden = true;
  }
  if (!res.ok) throw new Error(`${res.status} ${path}`);
  return res.json();
}

// ── language ──────────────────────────────────────────────────────────────────────────
function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.querySelectorAll("[data-i18n]").forEach((n) => { n.textContent = t(n.dataset.i18n); });
  document.title = t("title");
  $("report-map").setAttribute("aria-label", t("mapLabel"));
  fillAreaOptions();
}

function areaName(a) { return state.lang === "ko" ? a.name_ko : (a.name_en || a.name_ko); }

function fillAreaOptions() {
  const sel = $("area-select");
  const keep = state.area;
  sel.replaceChildren(el("option", { value: "" }, t("choose")));
  const sorted = [...state.areas].sort((a, b) => areaName(a).localeCompare(areaName(b), state.lang));
  for (const a of sorted) sel.append(el("option", { value: a.code }, areaName(a)));
  sel.value = keep;
}

// ── alerts ────────────────────────────────────────────────────────────────────────────
function referencedIds(list) {
  const ids = new Set();
  for (const a of list) {
    for (const ref of (a.references || "").split(/\s+/)) {
      const parts = ref.split(",");
      if (parts.length >= 2) ids.add(parts[1]);
    }
  }
  return ids;
}

function covers(alert, code) {
  return (alert.area_codes || []).some((g) => String(g).startsWith(code));
}

async function loadAlerts({ live = false } = {}) {
  const code = state.area;
  if (!code) return;
  const box = $("alerts");
  if (!live) box.replaceChildren(el("p", { class: "status" }, t("loading")));
  let list;
  try {
    list = await getJSON("/alerts?limit=200");
  } catch (e) {
    box.replaceChildren(el("p", { class: "error" }, t("loadFailed") + e.message));
    return;
  }
  const superseded = referencedIds(list);
  const now = Date.now();
  const current = list.filter((a) => a.msg_type !== "Cancel" && !superseded.has(a.identifier)
    && (!a.expires || Date.parse(a.expires) > now) && covers(a, code));
  await Promise.all(current.filter((a) => !state.details.has(a.id)).map(async (a) => {
    try { state.details.set(a.id, await getJSON(`/alerts/${a.id}`)); } catch (e) { /* keep summary only */ }
  }));
  if (code !== state.area) return; // the user moved on meanwhile
  const before = new Set(state.current.map((a) => a.id));
  state.current = current;
  if (live) reconcileAlerts(before); else renderAlerts();
  renderDisaster();
}

function infoFor(alert) {
  const detail = state.details.get(alert.id);
  const infos = (detail && detail.cap && detail.cap.info) || [];
  const want = LANGS[state.lang];
  return infos.find((i) => i.language === want) || infos.find((i) => i.language === "en-US") || infos[0] || null;
}

function firstParagraph(text) { return (text || "").split(/\n\s*\n/)[0].trim(); }

function crisisLabel(level) { return level ? t(level) : ""; }

function alertArticle(alert) {
  const info = infoFor(alert);
  const level = alert.crisis_level || "";
  const art = el("article", {
    class: `alert level-${level} sev-${alert.severity || ""}`, "data-id": String(alert.id),
    lang: info ? info.language : null, "aria-labelledby": `alert-h-${alert.id}`,
  });
  const badge = level ? el("span", { class: `badge level-${level}` }, crisisLabel(level)) : null;
  art.append(el("h3", { id: `alert-h-${alert.id}` }, badge, badge ? " " : null, info ? info.headline : `${alert.hazard} (${alert.severity})`));
  if (info) {
    if (info.description) art.append(el("p", {}, info.description));
    art.append(el("p", { class: "what" }, `${t("whatToDo")}: ${firstParagraph(info.instruction)}`));
    const g = info.guidance && info.guidance[state.audience];
    if (g) {
      art.append(el("h4", {}, `${t("whatToDo")} — ${t("aud_" + state.audience)}`));
      art.append(el("div", { class: "guidance" }, g));
    }
    if (info.instruction && info.instruction.includes("\n")) {
      art.append(el("details", {}, el("summary", {}, t("fullInstruction")), el("pre", {}, info.instruction)));
    }
    if (info.contact) art.append(el("p", { class: "meta" }, info.contact));
  }
  const sent = alert.sent ? new Date(alert.sent).toLocaleString(LANGS[state.lang]) : "";
  art.append(el("p", { class: "meta" }, `${t("sent")}: ${sent}`));
  return art;
}

function renderAlerts() {
  const box = $("alerts");
  if (!state.area) { box.replaceChildren(el("p", { class: "status" }, t("pickArea"))); return; }
  if (!state.current.length) { box.replaceChildren(el("p", { class: "status" }, t("noAlerts"))); return; }
  box.replaceChildren(...state.current.map(alertArticle));
}

/** Live update: add only new alerts (so screen readers announce just those), drop ended ones. */
function reconcileAlerts(before) {
  const box = $("alerts");
  const ids = new Set(state.current.map((a) => a.id));
  box.querySelectorAll("article[data-id]").forEach((n) => { if (!ids.has(Number(n.dataset.id))) n.remove(); });
  box.querySelectorAll("p.status").forEach((n) => n.remove());
  for (const a of [...state.current].reverse()) {
    if (before.has(a.id) && box.querySelector(`article[data-id="${a.id}"]`)) continue;
    const art = alertArticle(a);
    art.classList.add("new");
    box.prepend(art);
    if (!before.has(a.id)) notifyNew([a]);
  }
  if (!state.current.length) box.replaceChildren(el("p", { class: "status" }, t("noAlerts")));
}

function isSerious(a) {
  return ["alert", "serious"].includes(a.crisis_level) || ["Severe", "Extreme"].includes(a.severity);
}

function renderDisaster() {
  const banner = $("disaster-mode");
  const serious = state.current.filter(isSerious);
  if (!serious.length) { banner.hidden = true; document.body.classList.remove("disaster-on"); return; }
  const body = $("disaster-body");
  body.replaceChildren();
  for (const a of serious) {
    const info = infoFor(a);
    body.append(el("p", { class: "headline" }, info ? info.headline : a.hazard));
    if (info) {
      body.append(el("p", { class: "action" }, firstParagraph(info.instruction)));
      const g = info.guidance && info.guidance[state.audience];
      if (g && state.audience !== "general") body.append(el("div", { class: "guidance" }, g));
    }
  }
  const s = state.shelters[0];
  if (s) body.append(el("p", {}, t("nearestShelter") + shelterText(s), " ",
    el("button", { type: "button", class: "route-btn big", "data-index": "0" }, t("route"))));
  body.append(el("p", {}, t("call119")));
  banner.hidden = false;
  document.body.classList.add("disaster-on");
}

// ── shelters ──────────────────────────────────────────────────────────────────────────
function centre() {
  if (state.point) return state.point;
  const a = state.areas.find((x) => x.code === state.area);
  if (a && a.bbox) return { lon: (a.bbox[0] + a.bbox[2]) / 2, lat: (a.bbox[1] + a.bbox[3]) / 2 };
  return null;
}

function shelterText(s) {
  const name = state.lang === "ko" ? s.name_ko : (s.name_en || s.name_ko);
  const dist = s.distance_m != null ? ` — ${Math.round(s.distance_m)} ${t("meters")}` : "";
  return `${name}${s.address ? ` (${s.address})` : ""}${dist}`;
}

async function loadShelters() {
  const box = $("shelters");
  const c = centre();
  state.shelters = [];
  if (!state.area) { box.replaceChildren(el("p", { class: "status" }, t("pickArea"))); return; }
  try {
    if (c) state.shelters = await getJSON(`/places/nearest?lon=${c.lon}&lat=${c.lat}&kind=shelter&limit=3`);
    if (!state.shelters.length) state.shelters = (await getJSON(`/places?kind=shelter&area=${state.area}&limit=3`));
  } catch (e) { state.shelters = []; }
  renderShelters();
}

function renderShelters() {
  const box = $("shelters");
  if (!state.area) { box.replaceChildren(el("p", { class: "status" }, t("pickArea"))); return; }
  if (!state.shelters.length) { box.replaceChildren(el("p", { class: "status" }, t("noShelters"))); return; }
  box.replaceChildren(el("ul", { class: "places" }, ...state.shelters.map((s, i) => el("li", {}, shelterText(s), " ",
    el("button", { type: "button", class: "route-btn", "data-index": String(i) }, t("route"))))));
}

// The route from where the citizen is to a shelter: by road when the city has a road map
// (the evacuation service also avoids hazard areas and full shelters), else a plain straight line.
async function showRoute(shelter) {
  const from = centre();
  if (!from || !state.map) return;
  if (state.route) state.route.remove();
  let coords = null, text = "";
  try {
    const leg = await getJSON(`/evacuation?at=${from.lon},${from.lat}`);
    if (leg.geometry && leg.geometry.type === "LineString") {
      coords = leg.geometry.coordinates.map(([lon, lat]) => [lat, lon]);
      const s = leg.properties.shelter || {};
      text = `${state.lang === "ko" ? s.name_ko : (s.name_en || s.name_ko)} — ${t("routeRoad")}, ${Math.max(1, Math.round(leg.properties.seconds / 60))} ${t("minutes")}`;
    }
  } catch (e) { /* no road map: fall back to the straight line */ }
  if (!coords) {
    coords = [[from.lat, from.lon], [shelter.lat, shelter.lon]];
    text = `${shelterText(shelter)} — ${t("routeStraight")}`;
  }
  state.route = L.polyline(coords, { color: "#065f46", weight: 5, dashArray: coords.length === 2 ? "8 6" : null }).addTo(state.map);
  state.map.fitBounds(state.route.getBounds(), { padding: [20, 20] });
  $("route-status").textContent = text;
  $("report-map").scrollIntoView({ behavior: "smooth", block: "center" });  // the map is further down
}

// ── area choice ───────────────────────────────────────────────────────────────────────
async function chooseArea(code) {
  state.area = code;
  $("area-select").value = code;
  try { localStorage.setItem("haechi.area", code); } catch (e) { /* private mode */ }
  state.current = [];
  renderAlerts();
  renderDisaster();
  renderSubscribe();
  await Promise.all([loadAlerts(), loadShelters(), showDistrictOnMap()]);
}

function locate(onPoint) {
  const status = $("area-status");
  if (!navigator.geolocation) { status.textContent = t("locFailed"); return; }
  status.textContent = t("locating");
  navigator.geolocation.getCurrentPosition(
    (pos) => onPoint({ lon: pos.coords.longitude, lat: pos.coords.latitude }),
    () => { status.textContent = t("locFailed"); },
    { timeout: 10000, maximumAge: 60000 },
  );
}

async function areaAt(p) {
  const status = $("area-status");
  try {
    const a = await getJSON(`/areas/at?lon=${p.lon}&lat=${p.lat}&level=district`);
    state.point = p;
    status.textContent = t("locFound") + areaName(a);
    await chooseArea(a.code);
    setReportPoint(p);
  } catch (e) {
    status.textContent = t("outside");
  }
}

// ── report map and form ───────────────────────────────────────────────────────────────
function initMap() {
  if (typeof L === "undefined") {
    $("report-map").replaceChildren(el("p", { class: "status" }, t("mapUnavailable")));
    return;
  }
  state.map = L.map("report-map", { attributionControl: false, zoomControl: true }).setView([37.5665, 126.978], 11);
  state.map.on("click", (e) => setReportPoint({ lon: e.latlng.lng, lat: e.latlng.lat }));
}

async function showDistrictOnMap() {
  if (!state.map || !state.area) return;
  try {
    const a = await getJSON(`/areas/${state.area}?geometry=true`);
    if (state.outline) state.outline.remove();
    state.map.invalidateSize();
    if (a.geometry) {
      state.outline = L.geoJSON(a.geometry, { style: { color: "#0b4f9c", weight: 2, fillOpacity: 0.08 } }).addTo(state.map);
      state.map.fitBounds(state.outline.getBounds());
    }
  } catch (e) { /* map stays usable for clicks */ }
}

function setReportPoint(p, { fromInputs = false } = {}) {
  if (!fromInputs) {
    $("report-lat").value = p.lat.toFixed(6);
    $("report-lon").value = p.lon.toFixed(6);
  }
  if (!state.map) return;
  if (state.marker) state.marker.setLatLng([p.lat, p.lon]);
  else state.marker = L.circleMarker([p.lat, p.lon], { radius: 9, color: "#8a0000", weight: 3 }).addTo(state.map);
}

function numberOrRaw(v) {
  const s = v.trim();
  if (!s) return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : s; // let the server say what is wrong with it
}

async function submitReport(ev) {
  ev.preventDefault();
  const err = $("report-error"), ok = $("report-ok");
  err.hidden = true; ok.hidden = true;
  const body = {
    kind: $("report-kind").value,
    description: $("report-description").value,
    lon: numberOrRaw($("report-lon").value),
    lat: numberOrRaw($("report-lat").value),
    area_code: state.area || undefined,
  };
  const headers = { "Content-Type": "application/json", Accept: "application/json, application/problem+json" };
  const token = $("report-token").value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  let res, data = null;
  const submit = $("report-form").querySelector("[type=submit]");
  submit.disabled = true;  // one report at a time, also while it waits its turn
  try {
    res = await fetchPatiently(`${API}/reports`, { method: "POST", headers, body: JSON.stringify(body) },
      (s) => { ok.textContent = busyText("busyReport", s); ok.hidden = false; });
    data = await res.json().catch(() => null);
  } catch (e) {
    ok.hidden = true;
    showReportError(t("reportFailed"), e.message, []);
    return;
  } finally {
    submit.disabled = false;
  }
  ok.hidden = true;
  if (res.ok) {
    ok.textContent = t("reportOk") + (data && data.id != null ? data.id : "");
    ok.hidden = false;
    $("report-description").value = "";
    const photo = $("report-photo").files[0];
    if (photo && data && data.id != null) await sendPhoto(data.id, photo, headers.Authorization);
    return;
  }
  const detail = (data && (data.detail || data.title)) || `HTTP ${res.status}`;
  showReportError(t("reportFailed"), detail, (data && data.errors) || []);
}

async function sendPhoto(reportId, file, authorization) {
  const headers = { "Content-Type": file.type || "application/octet-stream", Accept: "application/json, application/problem+json" };
  if (authorization) headers.Authorization = authorization;
  try {
    const box = $("report-ok"), received = box.textContent;  // the report's number stays shown
    const res = await fetchPatiently(`${API}/reports/${reportId}/photos`, { method: "POST", headers, body: file },
      (s) => { box.textContent = `${received} ${busyText("busyReport", s)}`; });
    box.textContent = received;
    if (res.ok) { $("report-photo").value = ""; return; }
    const p = await res.json().catch(() => ({}));
    showReportError(t("photoFailed"), p.detail || `HTTP ${res.status}`, p.errors || []);
  } catch (e) { showReportError(t("photoFailed"), e.message, []); }
}

// ── subscribing: browser notifications while the page is open, or the district's Atom feed ──
function notifyWanted() { try { return localStorage.getItem("haechi.notify") === "on"; } catch (e) { return false; } }
function renderSubscribe() {
  const on = notifyWanted() && typeof Notification !== "undefined" && Notification.permission === "granted";
  const b = $("notify-btn");
  b.textContent = t(on ? "notifyOff" : "notifyOn");
  b.setAttribute("aria-pressed", String(on));
  $("feed-link").href = state.area ? `/alerts/${state.area}.atom` : "/alerts.atom";
}
async function toggleNotify() {
  if (notifyWanted()) { try { localStorage.setItem("haechi.notify", "off"); } catch (e) { /* */ } renderSubscribe(); $("subscribe-status").textContent = ""; return; }
  const allowed = typeof Notification !== "undefined" && (await Notification.requestPermission()) === "granted";
  try { localStorage.setItem("haechi.notify", allowed ? "on" : "off"); } catch (e) { /* */ }
  $("subscribe-status").textContent = t(allowed ? "notifyOnNow" : "notifyDenied");
  renderSubscribe();
}
function notifyNew(alerts) {
  if (!notifyWanted() || typeof Notification === "undefined" || Notification.permission !== "granted") return;
  for (const a of alerts) {
    const info = infoFor(a);
    new Notification(info ? info.headline : a.hazard, { body: info ? firstParagraph(info.instruction) : "", tag: String(a.id), lang: state.lang });
  }
}

function showReportError(title, detail, errors) {
  const err = $("report-error");
  err.replaceChildren(el("p", {}, el("strong", {}, title), " ", detail));
  if (errors.length) {
    err.append(el("ul", {}, ...errors.map((e) => el("li", {},
      el("code", {}, e.field || (Array.isArray(e.loc) ? e.loc.join(".") : "?")),
      e.message || e.msg || e.detail ? `: ${e.message || e.msg || e.detail}` : "",
    ))));
    for (const e of errors) {
      const name = String(e.field || "").split(".").pop();
      const input = document.querySelector(`#report-form [name="${name}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
    }
  }
  err.hidden = false;
}

// ── live stream ───────────────────────────────────────────────────────────────────────
function connectStream() {
  if (typeof EventSource === "undefined") return;
  const status = $("live-status");
  const es = new EventSource(`${API}/stream?types=alert.>`);
  const refresh = () => loadAlerts({ live: true });
  es.addEventListener("open", () => { status.dataset.i18n = "live"; status.textContent = t("live"); refresh(); });
  es.addEventListener("error", () => { status.dataset.i18n = "liveOff"; status.textContent = t("liveOff"); });
  es.addEventListener("alert.sent", refresh);
  es.addEventListener("lagged", refresh);
  es.addEventListener("reset", refresh);  // the events since its last are no longer kept: reload
}

// ── start ─────────────────────────────────────────────────────────────────────────────
async function start() {
  const params = new URLSearchParams(location.search);
  let stored = {};
  try { stored = { lang: localStorage.getItem("haechi.lang"), area: localStorage.getItem("haechi.area") }; } catch (e) { /* */ }
  const nav = (navigator.language || "ko").slice(0, 2);
  state.lang = [params.get("lang"), stored.lang, nav, "ko"].find((l) => l && T[l]);
  $("lang-select").value = state.lang;
  applyLanguage();
  initMap();

  $("lang-select").addEventListener("change", (e) => {
    state.lang = e.target.value;
    try { localStorage.setItem("haechi.lang", state.lang); } catch (err) { /* */ }
    applyLanguage();
    renderAlerts(); renderDisaster(); renderShelters(); renderSubscribe();
  });
  $("audience-select").addEventListener("change", (e) => {
    state.audience = e.target.value; renderAlerts(); renderDisaster();
  });
  $("area-select").addEventListener("change", (e) => { state.point = null; chooseArea(e.target.value); });
  $("locate-btn").addEventListener("click", () => locate(areaAt));
  $("report-locate").addEventListener("click", () => locate((p) => { setReportPoint(p); $("area-status").textContent = ""; }));
  for (const id of ["report-lat", "report-lon"]) {
    $(id).addEventListener("change", () => {
      const lat = Number($("report-lat").value), lon = Number($("report-lon").value);
      if ($("report-lat").value && $("report-lon").value && Number.isFinite(lat) && Number.isFinite(lon)) {
        setReportPoint({ lat, lon }, { fromInputs: true });
      }
    });
  }
  $("report-form").addEventListener("input", (e) => e.target.removeAttribute("aria-invalid"));
  $("report-form").addEventListener("submit", submitReport);
  $("notify-btn").addEventListener("click", toggleNotify);
  document.addEventListener("click", (e) => {
    const b = e.target.closest(".route-btn");
    if (b && state.shelters[Number(b.dataset.index)]) showRoute(state.shelters[Number(b.dataset.index)]);
  });

  try {
    state.areas = await getJSON("/areas?level=district");
  } catch (e) {
    $("area-status").textContent = t("loadFailed") + e.message;
  }
  fillAreaOptions();
  const initial = params.get("area") || stored.area;
  if (initial && state.areas.some((a) => a.code === initial)) await chooseArea(initial);
  connectStream();
}

document.addEventListener("DOMContentLoaded", start);
