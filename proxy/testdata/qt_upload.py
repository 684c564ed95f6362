"""A Cura-shaped upload: Qt's QNetworkAccessManager posting a QHttpMultiPart form (print, path, file) to an
OctoPrint /api/files/local, as the Cura OctoPrint plugin does (postFormWithParts), with no transfer timeout.

Usage: qt_upload.py URL FILE API_KEY. Prints "<status> <QNetworkReply error code> <Location>" when the reply
finishes (Cura's plugin reads the Location of a successful upload to name the file).
"""
import sys

from PyQt5.QtCore import QByteArray, QCoreApplication, QFile, QIODevice, QTimer, QUrl
from PyQt5.QtNetwork import QHttpMultiPart, QHttpPart, QNetworkAccessManager, QNetworkRequest

url, path, key = sys.argv[1:4]
app = QCoreApplication([])
manager = QNetworkAccessManager()
form = QHttpMultiPart(QHttpMultiPart.FormDataType)


def field(name, value):
    part = QHttpPart()
    part.setHeader(QNetworkRequest.ContentDispositionHeader, 'form-data; name="%s"' % name)
    part.setBody(QByteArray(value))
    form.append(part)


field("select", b"false")
field("print", b"false")
upload = QFile(path)
upload.open(QIODevice.ReadOnly)
part = QHttpPart()
part.setHeader(QNetworkRequest.ContentDispositionHeader, 'form-data; name="file"; filename="cura.gcode"')
part.setHeader(QNetworkRequest.ContentTypeHeader, "application/octet-stream")
part.setBodyDevice(upload)
form.append(part)

request = QNetworkRequest(QUrl(url))
request.setRawHeader(b"X-Api-Key", key.encode())
request.setRawHeader(b"User-Agent", b"Cura-OctoPrintPlugin-like")
reply = manager.post(request, form)
form.setParent(reply)


def finished():
    status = reply.attribute(QNetworkRequest.HttpStatusCodeAttribute)
    location = reply.header(QNetworkRequest.LocationHeader)
    print(status if status is not None else 0, int(reply.error()), location.toString() if location else "-")
    app.quit()


reply.finished.connect(finished)
QTimer.singleShot(300000, app.quit)  # the test's own bound, far beyond any wait here
app.exec_()
