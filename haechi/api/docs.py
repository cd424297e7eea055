"""The API's own description (Korean and English) and the interactive docs at ``/docs``.

The docs page uses Swagger UI from ``node_modules/swagger-ui-dist`` when `make` has installed it
(the npm package ``swagger-ui-dist``), so it works with no internet; otherwise it falls back to
FastAPI's default CDN copy.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

TITLE = "Haechi 해치 — 도시안전 통합플랫폼 API · Urban safety platform API"

DESCRIPTION = """
**해치(Haechi)** 는 도시 안전 운영을 위한 오픈소스 통합플랫폼입니다. 이 API는 통합DB의 행정구역,
장소(시설물·대피소·소방서·병원·CCTV·어린이보호구역·수위계), 재난 이력, 재난관리 사업,
시민 안전신고를 제공합니다.

**Haechi** is an open-source integrated platform for a city's safety operations. This API serves
the integrated database: administrative areas, places (facilities, shelters, fire stations,
hospitals, CCTV, school zones, gauges), disaster occurrences, disaster-management projects and
citizens' safety reports.

### 인증 · Authentication
공개 데이터는 토큰 없이 읽을 수 있습니다. 쓰기와 개인정보가 담긴 데이터는
`Authorization: Bearer <token>` 헤더가 필요하며, 역할(admin, operator, district_official, guardian,
citizen, device)에 따라 허용됩니다. 모든 쓰기 요청은 감사 기록에 남습니다.

Public data is readable without a token. Writes and data that may hold personal details need
`Authorization: Bearer <token>`; each route names the roles it admits (admin passes every check).
Every write, accepted or refused, is kept in the audit log.

### 오류 · Errors
오류는 RFC 9457 `application/problem+json` 형식이며, 잘못된 항목은 `errors[].field`
(예: `body.deaths`)로 알려 줍니다. Errors are RFC 9457 problem details; invalid fields are named
in `errors[].field` as dotted paths such as `body.deaths` or `query.lon`.

좌표는 WGS84 경위도(도), 거리는 미터입니다. Coordinates are WGS84 degrees; distances are metres.
"""

TAGS = [
    {
        "name": "areas",
        "description": "행정구역 (시·자치구·법정동), 통계, 경계 · Areas, statistics, boundaries",
    },
    {
        "name": "places",
        "description": "시설물·대피소·소방서·병원·CCTV 등 · Facilities, shelters, stations, CCTV …",
    },
    {
        "name": "disasters",
        "description": "자연·사회 재난 발생 이력 · Natural and social disaster occurrences",
    },
    {
        "name": "projects",
        "description": "재난관리 사업 (예방·대비·대응·복구) · Disaster-management projects",
    },
    {"name": "reports", "description": "시민 안전신고 · Citizens' safety reports"},
    {
        "name": "access",
        "description": "API 토큰과 감사 기록 (관리자) · API tokens and the audit log (admin)",
    },
    {"name": "sensing", "description": "관측 수집·실시간 상태·스트림 · Observations, live state, the live stream"},
    {"name": "warnings", "description": "특보와 발령 기준 · Warnings and the official criteria"},
    {"name": "alerts", "description": "CAP 1.2 경보 (5개 언어), 피드 · CAP alerts in five languages, feeds"},
    {"name": "subscriptions", "description": "웹훅 구독 · Webhook subscriptions"},
    {
        "name": "incidents",
        "description": "3개 센터가 함께 보는 사건, 이관, 출동 · Incidents shared by the three centers",
    },
    {"name": "units", "description": "119 출동대 상태와 위치 · 119 units, status and position"},
    {"name": "cctv", "description": "지능형 CCTV 분석 이벤트 · CCTV analytics events"},
    {"name": "drones", "description": "드론 등록·투입·비행 경로 · Drones, assignment, tracks"},
    {"name": "roads", "description": "도로망, 경로, 대피, 골든타임 커버리지 · Roads, routes, evacuation, coverage"},
    {"name": "predictions", "description": "예측: 하천 수위, 도시 침수, 폭염, 인파 · Forecasts feeding warnings"},
    {"name": "simulations", "description": "가상 도시 시뮬레이션: 지진·침수·폭염·인파 · What-if simulations"},
    {"name": "risk", "description": "지역 위험도 평가 · Regional risk index"},
    {
        "name": "care",
        "description": "취약계층 돌봄 (동의 기반, 개인정보 보호) · Care for the vulnerable, private by design",
    },
    {"name": "imports", "description": "기존 시스템 자료 가져오기 · Importers from existing systems"},
    {"name": "warehouse", "description": "데이터 레이크·마트·패턴 (직원용) · Lake, marts, patterns (staff)"},
    {"name": "open data", "description": "공공데이터 개방 (개인정보 없음) · Open data, never personal"},
    {"name": "system", "description": "상태·지표·오류 유형 · Health, metrics, problem types"},
]

SWAGGER_DIRS = [
    Path.cwd() / "node_modules" / "swagger-ui-dist",
    Path(__file__).resolve().parents[2] / "node_modules" / "swagger-ui-dist",
]


def local_swagger_ui() -> Path | None:
    """The installed ``swagger-ui-dist`` directory, if any."""
    return next((d for d in SWAGGER_DIRS if (d / "swagger-ui-bundle.js").is_file()), None)


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` from local Swagger UI assets when installed, else from FastAPI's CDN."""
    assets = local_swagger_ui()
    urls = {}
    if assets is not None:
        app.mount("/docs/assets", StaticFiles(directory=assets), name="swagger-ui")
        urls = {
            "swagger_js_url": "/docs/assets/swagger-ui-bundle.js",
            "swagger_css_url": "/docs/assets/swagger-ui.css",
            "swagger_favicon_url": "/docs/assets/favicon-32x32.png",
        }

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=TITLE, **urls
        )
