"""Reads Safeground's OGC API - Features with QGIS's own OAPIF provider, headless.

Run by Debian's ``/usr/bin/python3`` (python3-qgis), never by the project's virtual
environment, which cannot import the Debian-built ``qgis`` module; so this file imports nothing
from the project. ``tests/web/test_qgis.py`` runs it in a subprocess:

    /usr/bin/python3 tests/web/qgis_oapif.py JOB.json RESULT.json

JOB: ``{"url": ".../ogc", "layers": [LAYER, ...], "challenge": CHALLENGE or null}`` where LAYER
is ``{"typename", "username"?, "password"?, "basic_authcfg"?: bool, "bbox"?: [x0, y0, x1, y1],
"restrict_to_request_bbox"?: bool}`` (``basic_authcfg``: the username and password go into a
configuration of QGIS's *Basic* authentication method, as a user would set it in the
connection's Authentication tab, instead of the data source URI; ``restrict_to_request_bbox``:
the provider's "Only request features overlapping the view extent", so that it asks the server
for the box rather than filtering what it downloaded). CHALLENGE: ``{"url", "username", "password"}``: a GET through QGIS's
network access manager without credentials, answering its authentication request, as QGIS
desktop's login dialog does. RESULT: what QGIS saw, as JSON, for the test to compare with the API.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

# What QGIS logged (its Log Messages panel), collected to explain a layer that is not valid.
# (``QgsVectorLayer.error().summary()`` crashes QGIS 3.22's Python bindings.)
MESSAGES: list[str] = []


def main(job_path: str, result_path: str) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    with tempfile.TemporaryDirectory(prefix="qgis-profile-") as profile:
        # A throwaway profile and authentication database: nothing from ~ is read or written,
        # and no cache outlives the run.
        os.environ["QGIS_AUTH_DB_DIR_PATH"] = profile
        from qgis.core import Qgis, QgsApplication

        app = QgsApplication([], False, profile)
        app.initQgis()
        QgsApplication.messageLog().messageReceived.connect(
            lambda message, tag, _level: MESSAGES.append(f"{tag}: {message}")
        )
        try:
            result: dict[str, Any] = {"qgis_version": Qgis.QGIS_VERSION}
            result["layers"] = [read_layer(job["url"], spec) for spec in job["layers"]]
            if job.get("challenge"):
                result["challenge"] = challenge(**job["challenge"])
        finally:
            app.exitQgis()
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _bounds(rectangle: Any) -> list[float]:
    return [
        rectangle.xMinimum(),
        rectangle.yMinimum(),
        rectangle.xMaximum(),
        rectangle.yMaximum(),
    ]


def basic_authcfg(username: str, password: str) -> str:
    """A configuration of QGIS's Basic authentication method; returns its id."""
    from qgis.core import QgsApplication, QgsAuthMethodConfig

    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        manager.setMasterPassword("throwaway master password", True)
    config = QgsAuthMethodConfig("Basic")
    config.setName("safeground")
    config.setConfig("username", username)
    config.setConfig("password", password)
    stored, config = manager.storeAuthenticationConfig(config)
    if not stored:
        raise RuntimeError("QGIS did not store the authentication configuration")
    return str(config.id())


def read_layer(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Add the collection as an OAPIF layer, as Layer › Add WFS / OGC API - Features does."""
    from qgis.core import QgsApplication, QgsFeatureRequest, QgsRectangle, QgsVectorLayer

    parts = [f"url={_quoted(url)}", f"typename={_quoted(spec['typename'])}"]
    if spec.get("basic_authcfg"):
        parts.append(f"authcfg={_quoted(basic_authcfg(spec['username'], spec['password']))}")
    elif "username" in spec:
        parts += [f"username={_quoted(spec['username'])}", f"password={_quoted(spec['password'])}"]
    if spec.get("restrict_to_request_bbox"):
        parts.append("restrictToRequestBBOX='1'")
    logged = len(MESSAGES)
    layer = QgsVectorLayer(" ".join(parts), spec["typename"], "OAPIF")
    QgsApplication.processEvents()  # delivers the log messages
    seen: dict[str, Any] = {"typename": spec["typename"], "valid": layer.isValid()}
    seen["messages"] = MESSAGES[logged:]
    if not layer.isValid():
        return seen

    def features(request: Any) -> list[dict[str, Any]]:
        return [
            {
                "id": feature["id"],
                "record_id": feature["record_id"],
                "bounds": _bounds(feature.geometry().boundingBox()),
            }
            for feature in layer.getFeatures(request)
        ]

    seen["feature_count"] = layer.featureCount()
    seen["fields"] = [field.name() for field in layer.fields()]
    seen["extent"] = _bounds(layer.extent())
    if spec.get("bbox"):  # first, before the whole layer is downloaded and filtered locally
        box = QgsFeatureRequest().setFilterRect(QgsRectangle(*spec["bbox"]))
        seen["bbox_features"] = features(box)
    seen["features"] = features(QgsFeatureRequest())
    return seen


def challenge(url: str, username: str, password: str) -> dict[str, Any]:
    """GET ``url`` with no credentials through QGIS's network access manager, and give the
    username and password when it asks (a 401 with ``WWW-Authenticate: Basic``), as the
    desktop's authentication dialog would; report what was asked and the final status."""
    from qgis.core import QgsNetworkAccessManager
    from qgis.PyQt.QtCore import QEventLoop, QUrl
    from qgis.PyQt.QtNetwork import QNetworkRequest

    manager = QgsNetworkAccessManager.instance()
    realms: list[str] = []

    def answer(_reply: Any, authenticator: Any) -> None:
        realms.append(authenticator.realm())
        if len(realms) == 1:  # a second request means the credentials were refused
            authenticator.setUser(username)
            authenticator.setPassword(password)

    manager.authenticationRequired.connect(answer)
    try:
        reply = manager.get(QNetworkRequest(QUrl(url)))
        loop = QEventLoop()
        reply.finished.connect(loop.quit)
        if not reply.isFinished():
            loop.exec_()
        status = reply.attribute(QNetworkRequest.HttpStatusCodeAttribute)
        body = bytes(reply.readAll()).decode("utf-8", "replace")
    finally:
        manager.authenticationRequired.disconnect(answer)
    return {"realms": realms, "status": status, "body": body[:2000]}


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
