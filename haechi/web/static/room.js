/* Haechi situation room: map, warnings, alerts, timeline, chart, issue form. Plain JS, no build. */
(function () {
  "use strict";

  // ── labels (Korean first, English beside; the toggle swaps the order) ──────────────────────
  const T = {
    title: ["해치 상황실", "Haechi situation room"], skip: ["본문으로 건너뛰기", "Skip to content"],
    map: ["지도", "Map"], shelters: ["대피소", "Shelters"], warnings: ["발효 중인 특보", "Active warnings"],
    alerts: ["경보 발송", "Alerts"], chart: ["관측 차트", "Station chart"], station: ["관측소", "Station"],
    timeline: ["이벤트 타임라인", "Timeline"], issue: ["경보 발령 / 훈련", "Issue alert / drill"],
    token: ["운영자 토큰", "Operator token"], hazard: ["재난 유형", "Hazard"], level: ["단계", "Level"],
    area: ["지역", "Area"], value: ["값 (선택)", "Value (optional)"], exercise: ["훈련", "Exercise (drill)"],
    send: ["발령", "Issue"], detail: ["경보 상세", "Alert detail"], close: ["닫기", "Close"],
    connecting: ["연결 중", "Connecting"], live: ["실시간", "Live"], offline: ["연결 끊김 · 재시도", "Disconnected · retrying"],
    none_w: ["발효 중인 특보 없음", "No warnings in force"], none_a: ["경보 없음", "No alerts"],
    since: ["발효", "since"], cancel: ["해제", "Cancel"], details: ["상세", "Details"],
    unplaced: ["지역 미지정 (센서 위치 확인 필요)", "Not placed in a district (check the sensor's location)"],
    forecast: ["예측", "forecast"], forecast_hint: ["수위 예측 모델이 예상한 특보 (관측 전)", "Issued on a model forecast, before it was observed"],
    normal: ["정상", "Normal"], legend: ["범례", "Legend"], sent: ["발송됨", "Sent"], drill: ["훈련", "Drill"],
    need_token: ["토큰을 입력하세요", "Enter a token"], silent: ["무응답 센서", "Sensor silent"],
    description: ["내용", "Description"], instruction: ["행동요령", "Instruction"],
    issued: ["발령", "issued"], updated: ["변경", "updated"], cancelled: ["해제", "cancelled"],
    quality: ["품질", "QC"], no_data: ["자료 없음", "No data"], stage: ["기준", "stage"],
    district: ["지역 현황", "District summary"], district_pick: ["자치구", "District"],
    incidents: ["사건 · 출동", "Incidents and units"], ack: ["확인", "Acknowledge"], acked: ["확인됨", "Acknowledged"],
    people: ["인구", "Population"], elderly: ["65세 이상", "Aged 65+"], children: ["15세 미만", "Under 15"],
    foreigners: ["외국인", "Foreigners"], alone: ["홀몸 어르신", "Elderly living alone"],
    disabled: ["장애인", "People with disabilities"], shelters_n: ["대피소 (수용 인원)", "Shelters (capacity)"],
    stations_n: ["소방서 · 안전센터", "Fire stations"], hospitals_n: ["병원", "Hospitals"],
    at_risk: ["위험 시설 (D·E 등급)", "Facilities graded D or E"], in_force: ["발효 중 특보", "Warnings in force"],
    none: ["없음", "None"], no_incidents: ["진행 중인 사건 없음", "No open incidents"],
    token_for: ["운영자 토큰을 입력하면 사건과 출동대가 보입니다", "Enter an operator token to see incidents and units"],
    units_free: ["가용 출동대", "Units available"], acc3h: ["3시간 누적", "3-hour total"],
    layer: ["지도 레이어", "Map layer"], layer_warnings: ["특보", "Warnings"], layer_risk: ["위험지수", "Risk index"],
    layer_coverage: ["골든타임 커버리지", "Golden-time coverage"], layer_simulation: ["최근 시뮬레이션", "Latest simulation"],
    intensity: ["진도 (MMI)", "Intensity (MMI)"], no_simulation: ["완료된 시뮬레이션이 없습니다", "No finished simulation yet"], risk: ["위험도", "Risk"], rank: ["순위", "rank"],
    covered: ["7분 내 도달 인구", "Reached within the golden time"], layer_needs_token: ["이 레이어는 운영자 토큰이 필요합니다", "This layer needs an operator token"],
  };
  const LEVELS = ["attention", "caution", "alert", "serious"];
  // keep in step with --lv-* in room.css (fills); stage lines use darker shades
  const COLOURS = { none: "#e5e7eb", attention: "#2563eb", caution: "#facc15", alert: "#f97316", serious: "#dc2626" };
  const LINES = { attention: "#1d4ed8", caution: "#a16207", alert: "#c2410c", serious: "#b91c1c" };
  const LEVEL_T = { attention: ["관심", "Attention"], caution: ["주의", "Caution"], alert: ["경계", "Alert"],
    serious: ["심각", "Serious"], none: ["정상", "Normal"] };
  const HAZARD_T = { river_flood: ["하천 홍수", "River flood"], heavy_rain: ["호우", "Heavy rain"],
    fine_dust: ["미세먼지", "Fine dust"], asian_dust: ["황사", "Asian dust"], heat_wave: ["폭염", "Heat wave"],
    crowd: ["인파", "Crowd"], structure: ["시설물", "Structure"], earthquake: ["지진", "Earthquake"],
    cold_wave: ["한파", "Cold wave"], typhoon: ["태풍", "Typhoon"] };
  const OFFICIAL_T = { advisory: ["주의보", "Advisory"], warning: ["경보", "Warning"], major_warning: ["대홍수경보", "Major warning"] };

  let lang = sessionStorage.getItem("haechi.lang") || "ko";
  let latest = ""; // newest phenomenon time seen
  const pair = (p) => (p ? (lang === "ko" ? p[0] + " · " + p[1] : p[1] + " · " + p[0]) : "");
  const one = (p) => (p ? (lang === "ko" ? p[0] : p[1]) : "");
  const t = (k) => pair(T[k]);
  const lv = (l) => pair(LEVEL_T[l] || [l, l]);
  const hz = (h) => pair(HAZARD_T[h] || [h, h.replace(/_/g, " ")]);
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const $ = (id) => document.getElementById(id);
  const fmtTime = (iso) => {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d)) return esc(iso);
    return d.toLocaleString(lang === "ko" ? "ko-KR" : "en-GB", { timeZone: "Asia/Seoul", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  };
  const fmtNum = (v) => (typeof v === "number" ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2)) : esc(v));
  async function getJSON(url, token) {
    // Revalidated each time (an unchanged answer is a 304 from the server's memory): the stream says
    // when something changed, and the browser must not answer from its own copy (max-age) then.
    const headers = token ? { Accept: "application/json", Authorization: "Bearer " + token } : { Accept: "application/json" };
    const r = await fetch(url, { headers, cache: "no-cache" });
    if (!r.ok) throw new Error(url + " → " + r.status);
    return r.json();
  }
  function debounce(fn, ms) { let h; return () => { clearTimeout(h); h = setTimeout(fn, ms); }; }

  // ── state ──────────────────────────────────────────────────────────────────────────────────
  const S = { acksShown: new Set(), districts: {}, state: {}, stages: {}, warnings: [], alerts: [], criteria: [], gauges: [],
    markers: {}, districtLayer: null, shelterLayer: null, chart: null, chartId: null, chartData: [[], []] };

  // ── map ───────────────────────────────────────────────────────────────────────────────────
  const map = L.map("map", { zoomControl: true, attributionControl: true, zoomSnap: 0.25, preferCanvas: false });
  map.attributionControl.setPrefix(false).addAttribution("NGII 행정구역 경계 · admin boundaries");

  // ── base map: the Han River and the major roads, under the districts (no tile server) ─────
  // A pane below the overlay pane (400), drawn on one canvas: thousands of road segments stay fast.
  map.createPane("basemap").style.zIndex = 350;
  const BASE = L.canvas({ pane: "basemap" });
  const ROAD_STYLE = { 101: ["#7c3aed", 2.2], 102: ["#b91c1c", 2], 103: ["#d97706", 1.4], 104: ["#78716c", 1] };
  function baseStyle(f) {
    const p = f.properties || {};
    if (p.layer === "water") return { stroke: false, fillColor: "#93c5fd", fillOpacity: 0.9 };
    const [color, weight] = ROAD_STYLE[p.rank] || ["#a8a29e", 0.8];
    return { color, weight, opacity: 0.85 };
  }
  async function drawBasemap() {
    const base = await getJSON("/api/v1/basemap");
    S.basemap = base;
    L.geoJSON(base, { pane: "basemap", renderer: BASE, interactive: false, style: baseStyle }).addTo(map);
    for (const a of base.attribution || []) if (a) map.attributionControl.addAttribution(esc(a));
    legend();
  }

  function districtLevels() {
    const out = {};
    for (const w of S.warnings) {
      const l = w.crisis_level;
      if (LEVELS.indexOf(l) < 0) continue;
      // a gauge's or facility's buffer may reach several districts: colour every one it reaches
      const codes = (w.districts && w.districts.length) ? w.districts : [String(w.area_code || "").slice(0, 5)];
      for (const code of codes) {
        if (code.length !== 5) continue;
        if (!out[code] || LEVELS.indexOf(l) > LEVELS.indexOf(out[code])) out[code] = l;
      }
    }
    return out;
  }

  // choropleth bands for the risk index (1–10) and coverage (share reached): text labels say the value
  const BANDS = ["#fef3c7", "#fde68a", "#fdba74", "#f97316", "#c2410c"];
  function band(v, max) { return BANDS[Math.min(BANDS.length - 1, Math.max(0, Math.floor((v / max) * BANDS.length - 1e-9)))]; }
  function styleChoropleth() {
    const values = S.layerValues || {};
    S.districtLayer.eachLayer((layer) => {
      const p = layer.feature.properties, v = values[p.code];
      const fill = v == null ? COLOURS.none : (S.layer === "risk" ? band(v.value, 10) : band(1 - v.value, 1));
      layer.setStyle({ fillColor: fill, color: "#334155", weight: 1, fillOpacity: 0.7 });
      const el = layer.getElement && layer.getElement();
      if (el) { el.setAttribute("data-code", p.code); el.setAttribute("data-value", v == null ? "" : String(v.value)); }
      const name = lang === "ko" ? p.name_ko : p.name_en;
      layer.setTooltipContent(`<span>${esc(name)}</span>${v == null ? "" : `<br><span class="lvl-tag lv-none">${esc(v.label)}</span>`}`);
    });
  }
  function styleDistricts() {
    if (!S.districtLayer) return;
    if (S.layer === "risk" || S.layer === "coverage") { styleChoropleth(); return; }
    const levels = districtLevels();
    S.districtLayer.eachLayer((layer) => {
      const p = layer.feature.properties;
      const l = levels[p.code] || "none";
      layer.setStyle({ fillColor: COLOURS[l], color: "#334155", weight: 1, fillOpacity: l === "none" ? 0.35 : 0.6 });
      const el = layer.getElement && layer.getElement();
      if (el) { el.setAttribute("data-code", p.code); el.setAttribute("data-level", l); }
      const name = lang === "ko" ? p.name_ko : p.name_en;
      const lab = l === "none" ? "" : `<br><span class="lvl-tag lv-${l}">${esc(one(LEVEL_T[l]))}</span>`;
      layer.setTooltipContent(`<span>${esc(name)}</span>${lab}`);
    });
  }

  function drawDistricts(fc) {
    S.districtLayer = L.geoJSON(fc, {
      style: { color: "#334155", weight: 1, fillColor: COLOURS.none, fillOpacity: 0.35 },
      onEachFeature: (f, layer) => {
        S.districts[f.properties.code] = f.properties;
        layer.bindTooltip(f.properties.name_ko, { permanent: true, direction: "center", className: "district-label" });
        layer.on("click", () => {
          const a = $("f-area"); if (a) a.value = f.properties.code;
          showDistrict(f.properties.code);
        });
      },
    }).addTo(map);
    map.fitBounds(S.districtLayer.getBounds(), { padding: [4, 4] });
    styleDistricts();
  }

  function legend() {
    if (S.layer === "risk" || S.layer === "coverage" || S.layer === "simulation") {
      const labels = { risk: ["1–2", "3–4", "5–6", "7–8", "9–10"], coverage: ["80–100%", "60–80%", "40–60%", "20–40%", "0–20%"],
        simulation: ["≤ V", "VI", "VII", "VIII", "≥ IX"] }[S.layer];
      const what = { risk: "risk", coverage: "covered", simulation: "intensity" }[S.layer];
      $("legend").innerHTML = BANDS.map((c, i) => `<li><span class="swatch" style="background:${c}" aria-hidden="true"></span>${esc(one(T[what]))} ${labels[i]}</li>`).join("");
      return;
    }
    const items = ["none"].concat(LEVELS).map((l) => `<li><span class="swatch lv-${l}" aria-hidden="true"></span>${esc(lv(l))}</li>`);
    items.push(`<li><span class="swatch dot" aria-hidden="true"></span>${esc(pair(["관측소", "Station"]))}</li>`);
    items.push(...networkLegend());
    const base = S.basemap;
    if (base && base.features.some((f) => f.properties.layer === "water"))
      items.push(`<li><span class="swatch" style="background:#93c5fd" aria-hidden="true"></span>${esc(pair(["한강", "Han River"]))}</li>`);
    if (base && base.roads)
      items.push(`<li><span class="swatch" style="background:#b91c1c;height:3px" aria-hidden="true"></span>${esc(pair(["주요 도로", "Major roads"]))}</li>`);
    // say where the road data has a hole (Gangdong-gu is not in the Seoul node-link cut)
    if (base && base.roads && base.note) items.push(`<li class="muted" data-note="roads">${esc(base.note)}</li>`);
    $("legend").innerHTML = items.join("");
    $("legend").setAttribute("aria-label", t("legend"));
  }

  // stages of a datastream: from the gauge at the same place and its criteria (scope gauge:<ref>)
  // rainfall is judged on 3-hour totals (호우 기준): chart that total against the 3-hour rules
  const RAIN_WINDOW_H = 3;
  function stationRules(ds) {
    const wanted = ds.property === "rainfall" ? "PT" + RAIN_WINDOW_H + "H" : null;
    return S.criteria.filter((c) => c.property === ds.property && c.scope === "station" && (!wanted || c.window === wanted))
      .map((c) => ({ value: c.value, level: c.crisis_level, official: c.level }))
      .sort((a, b) => a.value - b.value)
      .filter((c, i, all) => i === 0 || c.value !== all[i - 1].value);
  }
  function stagesFor(ds) {
    if (ds.property !== "water_level") return stationRules(ds);
    const g = S.gauges.find((p) => Math.abs(p.lon - ds.lon) < 1e-4 && Math.abs(p.lat - ds.lat) < 1e-4);
    if (!g) return [];
    const rules = S.criteria.filter((c) => c.scope === "gauge:" + g.ref && c.property === "water_level");
    if (rules.length) return rules.map((c) => ({ value: c.value, level: c.crisis_level, official: c.level })).sort((a, b) => a.value - b.value);
    const out = [];
    if (g.advisory_stage_m != null) out.push({ value: g.advisory_stage_m, level: "caution", official: "advisory" });
    if (g.warning_stage_m != null) out.push({ value: g.warning_stage_m, level: "alert", official: "warning" });
    return out;
  }
  function exceeded(ds) {
    let top = "none";
    if (ds.property === "rainfall") return top;  // one reading is not the 3-hour total the rules judge
    for (const s of S.stages[ds.datastream_id] || []) if (typeof ds.result === "number" && ds.result >= s.value) top = s.level;
    return top;
  }

  function markerTooltip(ds) {
    const st = S.stages[ds.datastream_id] || [];
    const ex = exceeded(ds);
    const stTxt = st.map((s) => `${esc(one(OFFICIAL_T[s.official] || [s.official, s.official]))} ${fmtNum(s.value)}`).join(", ");
    return `<strong>${esc(ds.name)}</strong><br>${fmtNum(ds.result)} ${esc(ds.unit)} · ${esc(one(T.quality))}: ${esc(ds.quality)}` +
      (ds.silent ? ` · ${esc(one(T.silent))}` : "") + `<br>${fmtTime(ds.phenomenon_time)}` +
      (st.length ? `<br>${esc(one(T.stage))}: ${stTxt}<br><span class="lvl-tag lv-${ex}">${esc(one(LEVEL_T[ex]))}</span>` : "");
  }

  function upsertMarker(ds) {
    if (ds.lon == null || ds.lat == null || S.network.byStream[ds.datastream_id]) return;  // drawn on the network layer
    const ex = exceeded(ds);
    const colour = ds.silent || ds.quality === "bad" ? "#6b7280" : (ex === "none" ? "#0f4c81" : COLOURS[ex]);
    let m = S.markers[ds.datastream_id];
    // several datastreams share a gauge: offset discharge markers a little so both can be clicked
    const off = ds.property === "water_level" ? 0 : 0.004;
    if (!m) {
      m = L.circleMarker([ds.lat + off, ds.lon], { radius: ds.property === "water_level" ? 9 : 6, weight: 2, color: "#111827", fillOpacity: 0.95 })
        .addTo(map).bindTooltip("", { direction: "top" });
      m.on("click", () => selectStation(ds.datastream_id));
      S.markers[ds.datastream_id] = m;
      const el = m.getElement();
      if (el) { el.setAttribute("data-datastream", ds.datastream_id); el.setAttribute("tabindex", "0"); el.setAttribute("role", "button");
        el.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); selectStation(ds.datastream_id); } }); }
    }
    m.setStyle({ fillColor: colour });
    const el = m.getElement();
    if (el) { el.setAttribute("data-level", ex); el.setAttribute("aria-label", `${ds.name} ${fmtNum(ds.result)} ${ds.unit} ${LEVEL_T[ex][0]}`); }
    m.setTooltipContent(markerTooltip(ds));
  }

  async function loadShelters() {
    if (S.shelterLayer) return;
    S.shelterLayer = L.layerGroup();
    try {
      const list = await getJSON("/api/v1/places?kind=shelter");
      for (const p of list) {
        if (p.lon == null) continue;
        L.circleMarker([p.lat, p.lon], { radius: 3, color: "#065f46", weight: 1, fillColor: "#10b981", fillOpacity: 1 })
          .bindTooltip(esc(lang === "ko" ? p.name_ko || p.name_en : p.name_en || p.name_ko)).addTo(S.shelterLayer);
      }
      if (!list.length) addTimeline("info", pair(["대피소 자료 없음", "No shelters loaded"]));
    } catch (e) { console.warn(e); }
  }
  $("toggle-shelters").addEventListener("change", async (e) => {
    if (e.target.checked) { await loadShelters(); S.shelterLayer.addTo(map); } else if (S.shelterLayer) map.removeLayer(S.shelterLayer);
  });

  // ── the monitoring network: air-quality, weather and S-DoT stations, coloured by their newest reading ──
  // ~900 points on one canvas (as SVG they would be ~900 DOM nodes); S-DoT is a dense layer of its own,
  // drawn small and grown with the zoom, that the operator can hide. One request brings every station.
  const NETWORK_KINDS = ["air_station", "weather_station", "sdot_sensor"];
  const NETWORK_URL = "/api/v1/stations?" + NETWORK_KINDS.map((k) => "kind=" + k).join("&");
  const KIND_T = { air_station: ["대기측정소", "Air-quality stations"], weather_station: ["기상관측소", "Weather stations"],
    sdot_sensor: ["S-DoT 센서", "S-DoT sensors"] };
  const KIND_STYLE = { air_station: { radius: 6, weight: 2 }, weather_station: { radius: 5, weight: 2 }, sdot_sensor: { radius: 2, weight: 0.5 } };
  Object.assign(T, { sdot: KIND_T.sdot_sensor, net_colour: ["측정소 색: 최근 측정값과 특보 기준", "Station colour: latest reading against the warning criteria"] });
  map.createPane("network").style.zIndex = 420;
  const NET = L.canvas({ pane: "network" });
  S.network = { byId: {}, byStream: {}, markers: new Map(), layers: {}, properties: {}, counts: {}, rules: {} };

  function stationLevel(st) {  // "nodata" until a usable reading; else the highest criterion level it reaches
    let top = "none", any = false;
    for (const [code, r] of Object.entries(st.latest || {})) {
      if (r.silent || r.quality === "bad") continue;
      any = true;
      for (const s of S.network.rules[code] || []) if (r.result >= s.value && LEVELS.indexOf(s.level) > LEVELS.indexOf(top)) top = s.level;
    }
    return any ? top : "nodata";
  }
  const netColour = (l) => (l === "nodata" ? "#ffffff" : l === "none" ? "#0f4c81" : COLOURS[l]);
  function stationTooltip(st) {
    const N = S.network, l = stationLevel(st);
    const rows = Object.keys(st.streams).map((code) => {
      const p = N.properties[code] || {}, r = (st.latest || {})[code];
      return `${esc(one([p.name_ko || code, p.name_en || code]))}: ${r ? fmtNum(r.result) + " " + esc(p.unit || "") : esc(one(T.no_data))}`;
    });
    const when = Object.values(st.latest || {}).map((r) => r.phenomenon_time).sort().pop();
    return `<strong>${esc(lang === "ko" ? st.name_ko : st.name_en || st.name_ko)}</strong> <span class="muted">${esc(one(KIND_T[st.kind]))} ${esc(st.ref)}</span>` +
      `<br>${rows.join("<br>")}${when ? "<br>" + fmtTime(when) : ""}` + (l === "nodata" ? "" : `<br><span class="lvl-tag lv-${l}">${esc(one(LEVEL_T[l]))}</span>`);
  }
  function styleStation(st) {
    st.level = stationLevel(st);
    S.network.markers.get(st.id).setStyle({ fillColor: netColour(st.level), color: st.level === "nodata" ? "#6b7280" : "#111827" });
  }
  function drawNetwork(body) {
    if (!body) return;
    const N = S.network;
    Object.assign(N.properties, body.properties); N.counts = body.counts;
    if (!N.credited) {  // the publishers' credit (KOGL Type 1 asks for it), once: each source's name, before its details
      N.credited = true;
      const named = NETWORK_KINDS.flatMap((k) => (body.sources || {})[k] || []).map((s) => s.split(" (")[0].split(";")[0]);
      if (named.length) map.attributionControl.addAttribution(esc("측정소 · stations: " + [...new Set(named)].join(", ")));
    }
    for (const code of Object.keys(body.properties)) N.rules[code] = code === "rainfall" ? [] : stationRules({ property: code });  // rain: judged on window totals
    for (const st of body.stations) {
      const known = N.byId[st.id];
      if (known) {  // a reload (after a reset): keep what the stream brought since, if newer than the answer
        for (const [code, r] of Object.entries(st.latest)) if (!(known.latest[code] && known.latest[code].phenomenon_time > r.phenomenon_time)) known.latest[code] = r;
        styleStation(known); continue;
      }
      if (st.lon == null || !KIND_STYLE[st.kind]) continue;
      const group = N.layers[st.kind] || (N.layers[st.kind] = L.layerGroup());
      const m = L.circleMarker([st.lat, st.lon], Object.assign({ renderer: NET, fillOpacity: 0.9 }, KIND_STYLE[st.kind]))
        .bindTooltip(() => stationTooltip(st), { direction: "top" }).addTo(group);
      m.on("click", () => { const id = Object.values(st.streams).find((i) => S.state[i]); if (id != null) selectStation(id); });
      N.byId[st.id] = st; N.markers.set(st.id, m);
      for (const id of Object.values(st.streams)) N.byStream[id] = st;
      styleStation(st);
    }
    for (const [kind, group] of Object.entries(N.layers)) if (kind !== "sdot_sensor" || $("toggle-sdot").checked) group.addTo(map);
    sizeByZoom();
    $("map").dataset.stations = String(N.markers.size);
    legend();
  }
  function sizeByZoom() {  // the dense layer stays a texture at city scale and becomes clickable dots closer in
    const z = map.getZoom(), r = z >= 14 ? 5 : z >= 13 ? 4 : z >= 12 ? 3 : 2, group = S.network.layers.sdot_sensor;
    if (group) group.eachLayer((m) => m.setRadius(r));
  }
  map.on("zoomend", sizeByZoom);
  function networkObservation(o) {  // true when the reading belongs to a network station (drawn here, not as a marker of its own)
    const st = S.network.byStream[o.datastream_id];
    if (!st) return false;
    const code = Object.keys(st.streams).find((c) => st.streams[c] === o.datastream_id), prev = (st.latest || {})[code];
    if (!prev || prev.phenomenon_time <= o.phenomenon_time) {
      st.latest = Object.assign(st.latest || {}, { [code]: { result: o.result, phenomenon_time: o.phenomenon_time, quality: o.quality, silent: false } });
      styleStation(st);
    }
    return true;
  }
  function networkLegend() {
    const N = S.network;
    if (!N.markers.size) return [];
    const items = NETWORK_KINDS.filter((k) => N.counts[k]).map((k) =>
      `<li data-kind="${k}"><span class="swatch dot ${k}" aria-hidden="true"></span>${esc(pair(KIND_T[k]))} ${N.counts[k].toLocaleString()}</li>`);
    items.push(`<li data-kind="nodata"><span class="swatch dot nodata" aria-hidden="true"></span>${esc(t("no_data"))}</li>`);
    const rules = Object.entries(N.rules).filter(([, r]) => r.length)
      .map(([code, r]) => `${(N.properties[code] || {}).name_en || code} ≥ ${r.map((s) => `${s.value} (${one(LEVEL_T[s.level])})`).join(", ")} ${(N.properties[code] || {}).unit || ""}`);
    if (rules.length) items.push(`<li class="muted" data-note="criteria">${esc(t("net_colour"))}: ${esc(rules.join("; "))}</li>`);
    return items;
  }
  $("toggle-sdot").addEventListener("change", (e) => {
    const group = S.network.layers.sdot_sensor;
    if (group) { if (e.target.checked) group.addTo(map); else map.removeLayer(group); }
  });

  // ── map layers: warnings (live), the risk index, golden-time coverage (operators) ─────────
  async function chooseLayer(kind) {
    S.layer = kind; S.layerValues = null;
    if (S.overlay) { map.removeLayer(S.overlay); S.overlay = null; }
    if (kind === "simulation") { await showSimulation(); legend(); styleDistricts(); return; }
    if (kind !== "warnings") {
      const token = $("f-token").value.trim();
      if (!token) { showError(t("layer_needs_token")); $("f-token").focus(); $("layer-select").value = S.layer = "warnings"; }
      else {
        const url = kind === "risk" ? "/api/v1/risk?level=district" : "/api/v1/coverage?isochrones=false";
        const r = await fetch(url, { headers: { Accept: "application/json", Authorization: "Bearer " + token } });
        if (!r.ok) { showError(await problem(r)); $("layer-select").value = S.layer = "warnings"; }
        else {
          showError("");
          const body = await r.json();
          S.layerValues = layerValues(kind, body);
          // the places no station reaches in time, drawn over the districts
          const gaps = (body.features || []).filter((f) => f.properties && f.properties.layer === "not_covered" && f.geometry);
          if (kind === "coverage" && gaps.length) S.overlay = L.geoJSON(gaps, { style: { color: "#7f1d1d", weight: 1, fillColor: "#7f1d1d", fillOpacity: 0.35 }, interactive: false }).addTo(map);
        }
      }
    }
    legend(); styleDistricts();
  }
  // the newest finished what-if, drawn over the districts (earthquakes by shaking intensity per dong)
  async function showSimulation() {
    const token = $("f-token").value.trim();
    if (!token) { showError(t("layer_needs_token")); $("layer-select").value = S.layer = "warnings"; return; }
    const auth = { headers: { Accept: "application/json", Authorization: "Bearer " + token } };
    const r = await fetch("/api/v1/simulations?limit=20", auth);
    if (!r.ok) { showError(await problem(r)); $("layer-select").value = S.layer = "warnings"; return; }
    const run = (await r.json()).find((x) => x.status === "done");
    if (!run) { showError(t("no_simulation")); $("layer-select").value = S.layer = "warnings"; return; }
    const lr = await fetch(`/api/v1/simulations/${run.id}/layer`, auth);
    if (!lr.ok) { showError(await problem(lr)); return; }
    showError("");
    const mmi = (p) => (p.mmi == null ? null : p.mmi);
    S.simulation = run;
    S.overlay = L.geoJSON(await lr.json(), {
      style: (f) => { const v = mmi(f.properties); return { color: "#334155", weight: 0.5, fillOpacity: 0.75,
        fillColor: v == null ? COLOURS.none : band(Math.max(0, v - 4), 5) }; },
      onEachFeature: (f, layer) => layer.bindTooltip(`${esc(f.properties.name_ko || f.properties.code || "")}` +
        (mmi(f.properties) == null ? "" : ` · ${esc(one(T.intensity))} ${mmi(f.properties)}`)),
    }).addTo(map);
  }
  function layerValues(kind, body) {
    const out = {};
    if (kind === "risk") {
      for (const f of body.features || []) {
        const p = f.properties;
        if (p.risk != null) out[p.code] = { value: p.risk, label: `${one(T.risk)} ${p.risk}/10 · ${one(T.rank)} ${p.rank}` };
      }
    } else {
      for (const d of body.districts || (body.properties && body.properties.districts) || []) {
        const share = d.covered_share;
        if (share != null) out[String(d.code).slice(0, 5)] = { value: share, label: `${one(T.covered)} ${Math.round(share * 100)}%` };
      }
    }
    return out;
  }
  $("layer-select").addEventListener("change", (e) => chooseLayer(e.target.value));

  // ── warnings ──────────────────────────────────────────────────────────────────────────────
  function areaName(code) {
    const d = S.districts[String(code || "").slice(0, 5)];
    if (!d) return esc(code || "");
    return esc(lang === "ko" ? d.name_ko : d.name_en) + (String(code).length > 5 ? ` (${esc(code)})` : "");
  }
  function warningArea(w) {
    const d = w.area_desc || {};
    const named = lang === "ko" ? d["ko-KR"] || d["en-US"] : d["en-US"] || d["ko-KR"];
    return named ? esc(named) : areaName(w.area_code);
  }
  // Raised on a model's forecast (its criterion reads a forecast_… property), not yet observed.
  const onForecast = (w) => String((w.criterion || {}).property || "").startsWith("forecast_");
  function renderWarnings() {
    const ul = $("warnings");
    const ws = S.warnings.slice().sort((a, b) => LEVELS.indexOf(b.crisis_level) - LEVELS.indexOf(a.crisis_level));
    if (!ws.length) { ul.innerHTML = `<li class="empty">${esc(t("none_w"))}</li>`; return; }
    ul.innerHTML = ws.map((w) => `<li class="warning-item" data-level="${esc(w.crisis_level)}" data-id="${esc(w.id)}">
      <span class="lvl-tag lv-${esc(w.crisis_level)}">${esc(lv(w.crisis_level))}</span>
      <span class="w-main"><strong>${esc(hz(w.hazard))}</strong> ${esc(one(OFFICIAL_T[w.level] || [w.level, w.level]))}
      · ${warningArea(w)}${onForecast(w) ? ` <span class="tag forecast" title="${esc(one(T.forecast_hint))}">${esc(one(T.forecast))}</span>` : ""}<br><span class="muted">${fmtNum(w.value)} ${esc(w.unit || "")} · ${esc(one(T.since))} ${fmtTime(w.issued_at)}</span>
      ${w.acknowledged_at ? `<br><span class="ack">✓ ${esc(one(T.acked))} · ${esc(w.acknowledged_by || "")} · ${fmtTime(w.acknowledged_at)}</span>` : ""}
      ${w.unplaced ? `<br><span class="unplaced" role="note">⚠ ${esc(one(T.unplaced))}: ${esc(lang === "ko" ? w.unplaced.ko : w.unplaced.en)}</span>` : ""}</span>
      ${w.acknowledged_at ? "" : `<button type="button" class="small ack-w" data-id="${esc(w.id)}" aria-label="${esc(one(T.ack))} ${esc(w.hazard)} ${esc(w.area_code)}">${esc(one(T.ack))}</button>`}
      <button type="button" class="small cancel-w" data-id="${esc(w.id)}" aria-label="${esc(one(T.cancel))} ${esc(w.hazard)} ${esc(w.area_code)}">${esc(one(T.cancel))}</button></li>`).join("");
  }
  async function loadWarnings() {
    try { S.warnings = await getJSON("/api/v1/warnings"); } catch (e) { console.warn(e); return; }
    renderWarnings(); styleDistricts();
  }
  const reloadWarnings = debounce(loadWarnings, 300);
  $("warnings").addEventListener("click", async (e) => {
    const b = e.target.closest(".cancel-w, .ack-w"); if (!b) return;
    const token = $("f-token").value.trim();
    if (!token) { showError(t("need_token")); $("f-token").focus(); return; }
    const action = b.classList.contains("ack-w") ? "acknowledge" : "cancel";
    const r = await fetch(`/api/v1/warnings/${b.dataset.id}/${action}`, { method: "POST", headers: { Authorization: "Bearer " + token } });
    if (!r.ok) { showError(await problem(r)); return; }
    showError("");
    // This room's own acknowledgement shows at once, stream or not; other rooms hear it live.
    if (action === "acknowledge") ackToTimeline(await r.json());
    reloadWarnings();
  });
  function ackToTimeline(w) {
    const key = `${w.id}@${w.acknowledged_at}`;  // a new level clears an acknowledgement: the next one shows too
    if (w.id == null || S.acksShown.has(key)) return;
    S.acksShown.add(key);
    addTimeline("ack", `✓ ${esc(one(T.acked))}: <strong>${esc(hz(w.hazard || ""))}</strong> · ${areaName(w.area_code)} · ${esc(w.acknowledged_by || "")}`, null, w.acknowledged_at);
  }

  // ── alerts ────────────────────────────────────────────────────────────────────────────────
  const langCode = () => (lang === "ko" ? "ko-KR" : "en-US");
  function headlineOf(a) {
    if (a.headline && typeof a.headline === "object") return a.headline[langCode()] || a.headline["ko-KR"] || Object.values(a.headline)[0];
    const cap = capOf(a);
    const infos = (cap && cap.info) || [];
    const list = Array.isArray(infos) ? infos : [infos];
    const hit = list.find((i) => i.language === langCode()) || list.find((i) => (i.language || "").startsWith(lang)) || list[0];
    return (hit && hit.headline) || a.headline || a.identifier || "";
  }
  function capOf(a) {
    const c = a.cap || a.cap_json || (S.caps && S.caps[a.id]);
    return c ? (typeof c === "string" ? safeParse(c) : c) : null;
  }
  // the list has no CAP text: fetch each alert's JSON once for its headlines (cached)
  S.caps = {}; S.liveAlerts = {};
  async function fetchCaps() {
    const missing = S.alerts.slice(0, 30).filter((a) => !capOf(a) && a.id != null);
    await Promise.all(missing.map((a) => getJSON(`/api/v1/alerts/${a.id}`).then((d) => { S.caps[a.id] = d.cap || d.cap_json || d; }).catch(() => {})));
    if (missing.length) renderAlerts();
  }
  function safeParse(s) { try { return JSON.parse(s); } catch (e) { return null; } }
  function renderAlerts() {
    const ul = $("alerts");
    if (!S.alerts.length) { ul.innerHTML = `<li class="empty">${esc(t("none_a"))}</li>`; return; }
    ul.innerHTML = S.alerts.slice(0, 50).map((a) => {
      const drill = a.status === "Exercise";
      return `<li class="alert-item" data-id="${esc(a.id)}">
      ${a.crisis_level ? `<span class="lvl-tag lv-${esc(a.crisis_level)}">${esc(one(LEVEL_T[a.crisis_level] || [a.crisis_level, a.crisis_level]))}</span>` : ""}
      <span class="tag">${esc(a.msg_type || "")}</span>${drill ? ` <span class="tag drill">${esc(t("drill"))}</span>` : ""}
      <span class="a-main">${esc(headlineOf(a))}<br><span class="muted">${esc(hz(a.hazard || ""))} · ${fmtTime(a.sent)}</span></span>
      <button type="button" class="small detail-a" data-id="${esc(a.id)}">${esc(one(T.details))}</button></li>`;
    }).join("");
  }
  async function loadAlerts() {
    // With an operator's token the list includes what citizens never see (alerts of unplaced warnings).
    try { const list = await getJSON("/api/v1/alerts", $("f-token").value.trim()); S.alerts = Array.isArray(list) ? list : list.items || []; } catch (e) { console.warn(e); return; }
    // alerts seen on the stream but not in the public list (e.g. drills) stay visible
    for (const a of Object.values(S.liveAlerts)) if (!S.alerts.some((x) => x.id === a.id)) S.alerts.push(a);
    S.alerts.sort((a, b) => String(b.sent).localeCompare(String(a.sent)));
    renderAlerts(); fetchCaps();
  }
  const reloadAlerts = debounce(loadAlerts, 300);
  $("alerts").addEventListener("click", async (e) => {
    const b = e.target.closest(".detail-a"); if (!b) return;
    const box = $("alert-detail");
    box.textContent = "…";
    $("alert-dialog").showModal();
    try {
      const a = await getJSON(`/api/v1/alerts/${b.dataset.id}`);
      const cap = capOf(a) || a;
      S.caps[a.id] = cap;
      let infos = (cap && cap.info) || a.info || [];
      if (!Array.isArray(infos)) infos = [infos];
      infos = infos.slice().sort((x, y) => (y.language === langCode()) - (x.language === langCode()));
      box.innerHTML = `<p class="muted">${esc(a.identifier || "")} · ${esc(a.msg_type || "")} · ${esc(a.status || "")} · ${fmtTime(a.sent)}</p>` +
        infos.map((i) => `<section lang="${esc((i.language || "").slice(0, 2))}" class="info"><h3>${esc(i.language)} — ${esc(i.headline)}</h3>
        <p><strong>${esc(t("description"))}</strong>: ${esc(i.description)}</p>
        <p><strong>${esc(t("instruction"))}</strong>: ${esc(i.instruction)}</p></section>`).join("");
    } catch (err) { box.textContent = String(err); }
  });

  // ── timeline ──────────────────────────────────────────────────────────────────────────────
  function addTimeline(kind, html, level, when) {
    const ol = $("timeline");
    const li = document.createElement("li");
    li.className = "timeline-item";
    li.dataset.kind = kind;
    if (level) li.dataset.level = level;
    li.innerHTML = `<time>${fmtTime(when || new Date().toISOString())}</time> ` +
      (level && LEVELS.indexOf(level) >= 0 ? `<span class="lvl-tag lv-${level}">${esc(one(LEVEL_T[level]))}</span> ` : "") + html;
    ol.insertBefore(li, ol.firstChild);
    while (ol.children.length > 100) ol.removeChild(ol.lastChild);
  }

  // ── chart ─────────────────────────────────────────────────────────────────────────────────
  function fillStations() {
    const sel = $("station-select");
    const list = Object.values(S.state).sort((a, b) => a.datastream_id - b.datastream_id);
    sel.innerHTML = list.map((d) => `<option value="${d.datastream_id}">${esc(d.name)} (${esc(d.unit)})</option>`).join("");
    const first = list.find((d) => d.property === "water_level" && (S.stages[d.datastream_id] || []).length) || list[0];
    if (first) selectStation(first.datastream_id);
  }
  $("station-select").addEventListener("change", (e) => selectStation(Number(e.target.value)));

  async function selectStation(id) {
    S.chartId = id;
    $("station-select").value = String(id);
    const ds = S.state[id];
    let obs = [];
    try {
      const q = "$top=200&$orderby=" + encodeURIComponent("phenomenonTime desc") + "&$select=phenomenonTime,result";
      const r = await getJSON(`/sta/v1.1/Datastreams(${id})/Observations?${q}`);
      obs = r.value || [];
    } catch (e) { console.warn(e); }
    if (S.chartId !== id) return;
    obs = obs.filter((o) => typeof o.result === "number").reverse();
    S.chartRaw = obs.map((o) => o.result);
    S.chartData = [obs.map((o) => Date.parse(o.phenomenonTime) / 1000), S.chartRaw.slice()];
    if (ds && ds.property === "rainfall") S.chartData[1] = runningTotal(S.chartData[0], S.chartRaw);
    drawChart(ds);
  }

  function runningTotal(xs, ys) {  // sum over the trailing window ending at each time
    const out = [], span = RAIN_WINDOW_H * 3600;
    let lo = 0, sum = 0;
    for (let i = 0; i < xs.length; i++) {
      sum += ys[i];
      while (xs[lo] <= xs[i] - span) sum -= ys[lo++];
      out.push(Math.round(sum * 10) / 10);
    }
    return out;
  }
  S.chartRaw = [];
  function chartSeriesData() {
    const stages = S.stages[S.chartId] || [];
    return [S.chartData[0], S.chartData[1]].concat(stages.map((s) => S.chartData[0].map(() => s.value)));
  }

  function chartHeight() {
    const panel = $("chart").parentElement.getBoundingClientRect(), box = $("chart").getBoundingClientRect();
    return Math.max(140, Math.floor(panel.bottom - box.top - 44)); // room for uPlot's legend
  }

  function drawChart(ds) {
    const box = $("chart");
    if (S.chart) { S.chart.destroy(); S.chart = null; }
    box.innerHTML = "";
    if (!ds) return;
    const stages = S.stages[ds.datastream_id] || [];
    const series = [{ label: lang === "ko" ? "시각" : "Time", value: (u, v) => (v == null ? "" : fmtTime(new Date(v * 1000).toISOString())) },
      { label: `${ds.name}${ds.property === "rainfall" ? " · " + one(T.acc3h) : ""} (${ds.unit})`, stroke: "#0f4c81", width: 2 }]
      .concat(stages.map((s) => ({ label: `${one(OFFICIAL_T[s.official] || [s.official, s.official])} ${s.value} ${ds.unit}`,
        stroke: LINES[s.level] || "#b91c1c", dash: [6, 4], width: 1.5, points: { show: false } })));
    const w = Math.max(280, box.clientWidth || 400);
    const opts = { width: w, height: chartHeight(), series, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Asia/Seoul"),
      scales: { y: { range: (u, min, max) => {
        const vals = [min, max].concat(stages.map((s) => s.value)).filter((v) => v != null && isFinite(v));
        const lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals), pad = (hi - lo) * 0.08 || 1;
        return [lo - pad, hi + pad]; } } },
      axes: [{}, { label: ds.unit, size: 56 }] };
    S.chart = new uPlot(opts, chartSeriesData(), box);
    box.setAttribute("aria-label", `${ds.name}: ${S.chartData[1].length} ${lang === "ko" ? "개 관측값" : "observations"}, ` +
      `${lang === "ko" ? "최근" : "latest"} ${fmtNum(ds.result)} ${ds.unit}` + (stages.length ? `; ${stages.map((s) => s.official + " " + s.value).join(", ")}` : ""));
  }

  function chartAppend(o) {
    if (!S.chart || o.datastream_id !== S.chartId || typeof o.result !== "number") return;
    const ts = Date.parse(o.phenomenon_time) / 1000;
    const xs = S.chartData[0];
    if (xs.length && ts <= xs[xs.length - 1]) return;
    const ds = S.state[S.chartId];
    xs.push(ts); S.chartRaw.push(o.result);
    S.chartData[1] = ds && ds.property === "rainfall" ? runningTotal(xs, S.chartRaw) : S.chartRaw.slice();
    if (xs.length > 400) { xs.shift(); S.chartRaw.shift(); S.chartData[1].shift(); }
    S.chart.setData(chartSeriesData());
  }

  // ── district summary ──────────────────────────────────────────────────────────────────────
  function fillDistricts() {
    const sel = $("district-select"), prev = sel.value;
    sel.innerHTML = Object.values(S.districts).sort((a, b) => a.code.localeCompare(b.code))
      .map((d) => `<option value="${esc(d.code)}">${esc(lang === "ko" ? d.name_ko : d.name_en)}</option>`).join("");
    if (prev) sel.value = prev;
  }
  $("district-select").addEventListener("change", (e) => showDistrict(e.target.value));
  async function showDistrict(code) {
    if (!code) return;
    S.districtCode = code;
    $("district-select").value = code;
    let d;
    try { d = await getJSON(`/api/v1/areas/${encodeURIComponent(code)}/summary`); } catch (e) { $("district-summary").textContent = String(e); return; }
    if (S.districtCode !== code) return;
    const st = d.statistics || {}, n = (k) => (st[k] ? Number(st[k].value).toLocaleString() + (st[k].year ? ` (${st[k].year})` : "") : "—");
    const pl = d.places || {};
    const rows = [["people", n("population")], ["elderly", n("age_65_plus")], ["children", n("under_15")],
      ["foreigners", n("foreigners")], ["alone", n("elderly_living_alone")], ["disabled", n("disabled")],
      ["shelters_n", `${(pl.shelter || 0).toLocaleString()} (${(d.shelter_capacity || 0).toLocaleString()})`],
      ["stations_n", (pl.fire_station || 0).toLocaleString()], ["hospitals_n", (pl.hospital || 0).toLocaleString()],
      ["at_risk", d.facilities_at_risk.length ? d.facilities_at_risk.map((f) => esc(f.name_ko) + " " + esc(f.safety_grade)).join(", ") : one(T.none)],
      ["in_force", d.warnings.length ? d.warnings.map((w) => `<span class="lvl-tag lv-${esc(w.crisis_level)}">${esc(one(LEVEL_T[w.crisis_level] || [w.crisis_level, w.crisis_level]))}</span> ${esc(hz(w.hazard))}`).join(" ") : one(T.none)]];
    $("district-summary").innerHTML = `<h3 class="muted">${esc(lang === "ko" ? d.name_ko + " · " + d.name_en : d.name_en + " · " + d.name_ko)}</h3>` +
      `<dl class="facts">${rows.map(([k, v]) => `<dt>${esc(one(T[k]))}</dt><dd>${v}</dd>`).join("")}</dl>`;
  }

  // ── incidents and units (operators: the token decides what the room may see) ──────────────
  S.incidentLayer = L.layerGroup().addTo(map);
  async function loadIncidents() {
    const token = $("f-token").value.trim(), ul = $("incidents");
    if (!token) { ul.innerHTML = `<li class="empty">${esc(t("token_for"))}</li>`; S.incidentLayer.clearLayers(); return; }
    const auth = { headers: { Accept: "application/json", Authorization: "Bearer " + token } };
    let incidents = [], units = [];
    try {
      const [ri, ru] = await Promise.all([fetch("/api/v1/incidents?status=open&limit=50", auth), fetch("/api/v1/units", auth)]);
      if (!ri.ok) { ul.innerHTML = `<li class="empty">${esc(await problem(ri))}</li>`; return; }
      incidents = await ri.json(); units = ru.ok ? await ru.json() : [];
    } catch (e) { console.warn(e); return; }
    const free = units.filter((u) => u.status === "available").length;
    ul.innerHTML = `<li class="muted">${esc(one(T.units_free))}: ${free} / ${units.length}</li>` + (incidents.length ? incidents.map((i) =>
      `<li class="incident-item" data-id="${esc(i.id)}"><span class="tag">${esc(i.status)}</span>
       <span class="a-main"><strong>${esc(i.title || i.kind)}</strong><br><span class="muted">${esc(i.kind)} · ${esc(i.center || "")} · ${fmtTime(i.opened_at)}</span></span></li>`).join("")
      : `<li class="empty">${esc(t("no_incidents"))}</li>`);
    S.incidentLayer.clearLayers();
    for (const i of incidents) if (i.lon != null) L.marker([i.lat, i.lon], { title: i.title || i.kind, alt: i.title || i.kind, keyboard: true })
      .bindTooltip(`${esc(i.title || i.kind)} · ${esc(i.status)}`).addTo(S.incidentLayer);
    for (const u of units) if (u.lon != null) L.circleMarker([u.lat, u.lon], { radius: 4, color: "#7c2d12", weight: 1,
      fillColor: u.status === "available" ? "#16a34a" : "#b91c1c", fillOpacity: 1 })
      .bindTooltip(`${esc(u.call_sign)} · ${esc(u.unit_type)} · ${esc(u.status)}`).addTo(S.incidentLayer);
  }
  const reloadIncidents = debounce(loadIncidents, 300);
  $("f-token").addEventListener("change", () => { reloadIncidents(); reloadAlerts(); if (S.es) connect(); });

  // ── issue form ────────────────────────────────────────────────────────────────────────────
  function showError(msg) { $("issue-error").textContent = msg || ""; }
  async function problem(r) {
    try { const j = await r.json(); return (j.title ? j.title + ": " : "") + (j.detail || JSON.stringify(j)); } catch (e) { return r.status + " " + r.statusText; }
  }
  function fillForm() {
    const hazards = [...new Set(S.criteria.map((c) => c.hazard))];
    const hsel = $("f-hazard"), prevH = hsel.value;
    hsel.innerHTML = hazards.map((h) => `<option value="${esc(h)}">${esc(hz(h))}</option>`).join("");
    if (prevH) hsel.value = prevH;
    fillLevels();
    const asel = $("f-area"), prevA = asel.value;
    asel.innerHTML = Object.values(S.districts).sort((a, b) => a.code.localeCompare(b.code))
      .map((d) => `<option value="${esc(d.code)}">${esc(lang === "ko" ? d.name_ko + " · " + d.name_en : d.name_en + " · " + d.name_ko)}</option>`).join("");
    if (prevA) asel.value = prevA;
  }
  function fillLevels() {
    const h = $("f-hazard").value, lsel = $("f-level"), prev = lsel.value;
    const seen = new Set();
    lsel.innerHTML = S.criteria.filter((c) => c.hazard === h && !seen.has(c.level) && seen.add(c.level))
      .map((c) => `<option value="${esc(c.level)}">${OFFICIAL_T[c.level] ? esc(one(OFFICIAL_T[c.level])) + " — " : ""}${esc(lv(c.crisis_level))}</option>`).join("");
    if (prev) lsel.value = prev;
  }
  $("f-hazard").addEventListener("change", fillLevels);
  $("f-token").value = sessionStorage.getItem("haechi.token") || "";
  $("f-token").addEventListener("change", (e) => sessionStorage.setItem("haechi.token", e.target.value.trim()));
  $("issue-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(""); $("issue-ok").textContent = "";
    const token = $("f-token").value.trim();
    sessionStorage.setItem("haechi.token", token);
    if (!token) { showError(t("need_token")); $("f-token").focus(); return; }
    const body = { hazard: $("f-hazard").value, level: $("f-level").value, area: $("f-area").value, exercise: $("f-exercise").checked };
    const v = $("f-value").value;
    if (v !== "") body.value = Number(v);
    try {
      const r = await fetch("/api/v1/alerts", { method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + token, Accept: "application/json" }, body: JSON.stringify(body) });
      if (!r.ok) { showError(await problem(r)); return; }
      const a = await r.json().catch(() => ({}));
      $("issue-ok").textContent = `${t("sent")}: ${a.identifier || a.id || ""}`;
      reloadAlerts();
    } catch (err) { showError(String(err)); }
  });

  // ── language ──────────────────────────────────────────────────────────────────────────────
  function applyLang() {
    document.documentElement.lang = lang;
    document.title = t("title");
    document.querySelectorAll("[data-i18n]").forEach((el) => {
      const k = el.dataset.i18n;
      if (k === "connecting") return;
      el.textContent = t(k);
    });
    const b = $("lang-toggle");
    b.textContent = lang === "ko" ? "English" : "한국어";
    b.setAttribute("aria-pressed", String(lang === "en"));
    b.setAttribute("lang", lang === "ko" ? "en" : "ko");
    b.title = lang === "ko" ? "영어로 전환 · Switch to English" : "Switch to Korean · 한국어로 전환";
    $("map").setAttribute("aria-label", pair(["서울 지도", "Map of Seoul"]));
    setConn($("conn").dataset.state);
    if (typeof latest !== "undefined" && latest) $("clock").textContent = fmtTime(latest);
    legend(); renderWarnings(); renderAlerts(); styleDistricts(); fillForm(); fillDistricts();
    if (S.districtCode) showDistrict(S.districtCode);
    Object.values(S.state).forEach(upsertMarker);
    if (S.chartId != null && S.state[S.chartId]) drawChart(S.state[S.chartId]);
  }
  $("lang-toggle").addEventListener("click", () => { lang = lang === "ko" ? "en" : "ko"; sessionStorage.setItem("haechi.lang", lang); applyLang(); });

  function setConn(state) {
    const c = $("conn");
    c.dataset.state = state;
    c.textContent = t(state === "live" ? "live" : state === "offline" ? "offline" : "connecting");
  }

  // ── live stream ───────────────────────────────────────────────────────────────────────────
  // Incidents and units reach staff only: with an operator token the stream carries them too.
  function connect() {
    const token = $("f-token").value.trim();
    if (S.es) S.es.close();
    setConn("connecting");  // until the new stream is open: what happens meanwhile is not shown live
    const es = S.es = new EventSource("/api/v1/stream?types=" + encodeURIComponent("observation.>,warning.>,alert.>,sensor.>,incident.>,unit.>") +
      (token ? "&token=" + encodeURIComponent(token) : ""));
    es.onopen = () => setConn("live");
    es.onerror = () => setConn("offline");
    es.addEventListener("observation", (ev) => {
      const o = safeParse(ev.data); if (!o) return;
      const onNetwork = networkObservation(o);
      const ds = S.state[o.datastream_id];
      if (ds) {
        const before = exceeded(ds);
        Object.assign(ds, { result: o.result, quality: o.quality, phenomenon_time: o.phenomenon_time, silent: false });
        upsertMarker(ds);
        const after = exceeded(ds);
        if (after !== before) addTimeline("stage", `${esc(ds.name)} ${fmtNum(ds.result)} ${esc(ds.unit)}`, after === "none" ? null : after, o.phenomenon_time);
        if (o.quality && o.quality !== "good") addTimeline("qc", `${esc(ds.name)}: ${esc(one(T.quality))} ${esc(o.quality)}`, null, o.phenomenon_time);
      } else if (!S.refreshing && !onNetwork) {
        // A station reporting for the first time: fetch its profile, then list and map it.
        S.refreshing = getJSON("/api/v1/state").then((state) => {
          for (const d of state) {
            if (!S.state[d.datastream_id]) { S.state[d.datastream_id] = d; S.stages[d.datastream_id] = stagesFor(d); upsertMarker(d); }
          }
          const keep = S.chartId; fillStations(); if (keep != null) selectStation(keep);
        }).catch(() => {}).finally(() => { S.refreshing = null; });
      }
      chartAppend(o);
      if (o.phenomenon_time > latest) { latest = o.phenomenon_time; $("clock").textContent = fmtTime(latest); }
    });
    es.addEventListener("warning.changed", (ev) => {
      const w = safeParse(ev.data) || {};
      const kind = { issue: "issued", update: "updated", cancel: "cancelled" }[w.kind] || w.kind;
      const area = typeof w.area === "object" && w.area ? (w.area.code || w.area.key || JSON.stringify(w.area)) : w.area;
      addTimeline("warning", `<strong>${esc(hz(w.hazard || ""))}</strong> ${esc(one(OFFICIAL_T[w.level] || [w.level || "", w.level || ""]))} ` +
        `${esc(T[kind] ? one(T[kind]) : kind)} · ${areaName(area)}${w.value != null ? " · " + fmtNum(w.value) : ""}`, w.crisis_level, w.at);
      reloadWarnings();
    });
    es.addEventListener("alert.sent", (ev) => {
      const a = safeParse(ev.data) || {};
      addTimeline("alert", `<span class="tag">CAP</span> ${esc(headlineOf(a))}${a.status === "Exercise" ? ` <span class="tag drill">${esc(one(T.drill))}</span>` : ""}`, a.crisis_level);
      if (a.id != null) S.liveAlerts[a.id] = Object.assign({ sent: new Date().toISOString() }, a);
      if (a.id != null && !S.alerts.some((x) => x.id === a.id)) { S.alerts.unshift(Object.assign({ sent: new Date().toISOString() }, a)); renderAlerts(); }
      reloadAlerts();
    });
    es.addEventListener("warning.acknowledged", (ev) => {
      ackToTimeline(safeParse(ev.data) || {});
      reloadWarnings();
    });
    for (const type of ["incident.changed", "unit.changed"]) es.addEventListener(type, (ev) => {
      const d = safeParse(ev.data) || {};
      if (type === "incident.changed") addTimeline("incident", `<span class="tag">${esc(one(["사건", "Incident"]))}</span> ${esc(d.title || d.kind || "")} · ${esc(d.status || "")}`);
      reloadIncidents();
    });
    // The server no longer holds the events since this room's last one (it restarted, or the room
    // was away too long): what it shows may be stale, so it fetches everything again. A `lagged`
    // needs nothing: the stream ends and the browser resumes it from the last event by itself.
    es.addEventListener("reset", () => {
      getJSON("/api/v1/state").then((state) => {
        for (const d of state) {
          S.state[d.datastream_id] = Object.assign(S.state[d.datastream_id] || {}, d);
          S.stages[d.datastream_id] = stagesFor(d); upsertMarker(S.state[d.datastream_id]);
        }
      }).catch((e) => console.warn(e));
      reloadWarnings(); reloadAlerts(); reloadIncidents();
      getJSON(NETWORK_URL).then(drawNetwork).catch((e) => console.warn(e));
    });
    es.addEventListener("sensor.silent", (ev) => {
      const s = safeParse(ev.data) || {};
      const ds = S.state[s.datastream_id];
      if (ds) { ds.silent = true; upsertMarker(ds); }
      addTimeline("silent", `${esc(one(T.silent))}: ${esc(ds ? ds.name : s.datastream_id || s.name || "")}`);
    });
  }

  // ── readings lost on the way in (MQTT gaps, from /metrics; docs/mqtt.md "Loss shows") ─────
  const GAPS_T = ["수신 누락", "Readings missing"], GAP_STREAMS_T = ["개 스트림", "streams"];
  let gaps = {};  // datastream id → readings missing
  async function loadGaps() {
    try {
      const r = await fetch("/metrics", { cache: "no-cache" });
      if (!r.ok) return;
      gaps = {};
      for (const m of (await r.text()).matchAll(/^haechi_mqtt_missing_readings\{datastream="(\d+)"\} (\S+)$/gm)) gaps[m[1]] = Number(m[2]);
      renderGaps();
    } catch (e) { console.warn("gaps", e); }
  }
  function renderGaps() {
    let badge = $("gaps");
    if (!badge) {
      badge = document.createElement("p");
      badge.id = "gaps"; badge.className = "conn"; badge.dataset.state = "offline"; badge.setAttribute("role", "status");
      $("conn").after(badge);
    }
    const ids = Object.keys(gaps), total = ids.reduce((n, i) => n + gaps[i], 0);
    badge.hidden = total === 0;
    badge.textContent = `${pair(GAPS_T)}: ${total} (${ids.length} ${one(GAP_STREAMS_T)})`;
    badge.title = ids.map((i) => `${S.state[i] ? S.state[i].name : "#" + i}: ${gaps[i]}`).join("\n");
  }
  $("lang-toggle").addEventListener("click", renderGaps);

  // ── start ─────────────────────────────────────────────────────────────────────────────────
  async function start() {
    applyLang();
    const [fc, state, criteria, gauges, network] = await Promise.all([
      getJSON("/api/v1/areas.geojson?level=district"), getJSON("/api/v1/state"),
      getJSON("/api/v1/criteria").catch(() => []), getJSON("/api/v1/places?kind=river_gauge").catch(() => []),
      getJSON(NETWORK_URL).catch((e) => { console.warn("stations", e); return null; })]);
    S.criteria = criteria; S.gauges = gauges;
    drawDistricts(fc);
    drawNetwork(network);
    drawBasemap().catch((e) => console.warn("base map", e));  // a backdrop: the room works without it
    for (const ds of state) { S.state[ds.datastream_id] = ds; S.stages[ds.datastream_id] = stagesFor(ds); upsertMarker(ds);
      if (ds.phenomenon_time > latest) latest = ds.phenomenon_time; }
    $("clock").textContent = fmtTime(latest);
    fillForm(); fillStations(); fillDistricts();
    await Promise.all([loadWarnings(), loadAlerts(), loadIncidents()]);
    const first = Object.keys(S.districts).sort()[0];
    if (first) showDistrict(S.districtCode || first);
    connect();
    loadGaps(); setInterval(loadGaps, 30000);
    window.addEventListener("resize", debounce(() => { if (S.chart) S.chart.setSize({ width: $("chart").clientWidth, height: chartHeight() }); map.invalidateSize(); }, 200));
  }
  start().catch((e) => { console.error(e); setConn("offline"); addTimeline("error", esc(String(e))); });
  window.haechiRoom = S;
})();
