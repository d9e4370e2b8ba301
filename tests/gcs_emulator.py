"""A local Google Cloud Storage for the gs:// tests: gcp-storage-emulator, in memory, with fixes.

Run as a script it serves until killed: `python tests/gcs_emulator.py [--port P]` prints
`ready http://127.0.0.1:P` once it accepts requests. `client_env(url)` is the environment
that points gcsfs, tensorstore (Orbax) and the Google auth libraries at it.

The emulator (2026.7) lacks three things the real service has and the clients rely on;
they are added to its route table here:
1. x-goog-generation headers on downloads: tensorstore reads an object's generation from
   them and makes its next write conditional on it (Orbax's atomic manifest updates).
2. ifGenerationMatch / ifGenerationNotMatch preconditions (412 / 304).
3. The objects.moveTo route (gcsfs `mv`); without it each move retries for ~30 s.
4. Suffix ranges (`Range: bytes=-N`), with which array_record's reader opens a file.
And one the tests need: a bucket whose name starts with "readonly" refuses writes with 403,
as a bucket the caller may only read does.
It also serves each connection in a thread (one request at a time, under a lock): the
emulator's single-threaded server would let one idle keep-alive connection block the rest.
"""
import argparse
import functools
import http.server
import re
import socket
import socketserver
import sys
import threading
import time
from http import HTTPStatus

READ_ONLY_PREFIX = "readonly"


def client_env(url: str) -> dict:
  return {
      "STORAGE_EMULATOR_HOST": url,  # gcsfs, google-cloud-storage
      "CLOUD_STORAGE_EMULATOR_ENDPOINT": url,
      "TENSORSTORE_GCS_HTTP_URL": url,  # tensorstore (Orbax's arrays)
      "GOOGLE_AUTH_TOKEN_FOR_TESTING": "fake",  # tensorstore: no metadata-server lookup
      "FSSPEC_GS_TOKEN": "anon",  # gcsfs: no credential search
      "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",  # gcsfs: no bucket-type probe
      "NO_GCE_CHECK": "true",  # google-auth: do not probe for a GCE metadata server
  }


def _patch():
  from gcp_storage_emulator import server
  from gcp_storage_emulator.exceptions import NotFound
  from gcp_storage_emulator.handlers import objects
  if getattr(server, "_ssl_jax_patched", False):
    return server

  def query(request, name):
    value = request.query.get(name)
    return value[0] if value else None

  def generation(storage, bucket, name):
    try:
      return int(storage.get_file_obj(bucket, name)["generation"])
    except NotFound:
      return 0

  def refused(request, storage, name, writing):
    """The status to answer instead of running the handler, or None."""
    bucket = request.params.get("bucket_name", "")
    if writing and bucket.startswith(READ_ONLY_PREFIX):
      return HTTPStatus.FORBIDDEN
    if name is None:
      return None
    current = generation(storage, bucket, name)
    match, not_match = query(request, "ifGenerationMatch"), query(request, "ifGenerationNotMatch")
    if match is not None and int(match) != current:
      return HTTPStatus.PRECONDITION_FAILED
    if not_match is not None and int(not_match) == current:
      return HTTPStatus.NOT_MODIFIED if not writing else HTTPStatus.PRECONDITION_FAILED
    return None

  def answer(response, status):
    response.status = status
    if status == HTTPStatus.FORBIDDEN:
      response.json({"error": {"code": 403, "message": "Caller does not have "
                               "storage.objects.create access (read-only bucket)."}})

  def suffix_range_as_start(request, storage, name):
    """'Range: bytes=-N' (the last N bytes, which riegeli asks for first) as 'bytes=S-'."""
    headers = request._request_handler.headers
    match = re.fullmatch(r"\s*bytes=-(\d+)\s*", headers.get("range", "") or "")
    if match:
      size = int(storage.get_file_obj(request.params["bucket_name"], name)["size"])
      del headers["range"]
      headers["Range"] = f"bytes={max(0, size - int(match.group(1)))}-"

  def reading(handler):
    def wrapped(request, response, storage, *args, **kwargs):
      name = request.params.get("object_id")
      status = refused(request, storage, name, writing=False)
      if status is not None:
        return answer(response, status)
      try:
        suffix_range_as_start(request, storage, name)
      except (NotFound, KeyError):
        pass  # the handler answers 404
      handler(request, response, storage, *args, **kwargs)
      try:
        obj = storage.get_file_obj(request.params["bucket_name"], name)
        response["x-goog-generation"] = str(obj["generation"])
        response["x-goog-metageneration"] = str(obj.get("metageneration", "1"))
        response["x-goog-stored-content-length"] = str(obj["size"])
      except (NotFound, KeyError):
        pass
    return wrapped

  def writing(handler):
    def wrapped(request, response, storage, *args, **kwargs):
      name = request.params.get("object_id") or query(request, "name")
      status = refused(request, storage, name, writing=True)
      if status is not None:
        return answer(response, status)
      return handler(request, response, storage, *args, **kwargs)
    return wrapped

  def move(request, response, storage, *args, **kwargs):
    p = request.params
    status = refused(request, storage, None, writing=True)
    if status is not None:
      return answer(response, status)
    try:
      moved = objects._copy(request.base_url, storage, p["bucket_name"], p["object_id"],
                            p["bucket_name"], p["dest_object_id"])
    except NotFound:
      response.status = HTTPStatus.NOT_FOUND
      return
    objects._delete(storage, p["bucket_name"], p["object_id"])
    response.json(moved)

  wrap = {objects.get: reading(objects.get), objects.download: reading(objects.download),
          objects.insert: writing(objects.insert), objects.delete: writing(objects.delete)}
  for name in ("copy", "rewrite", "compose", "patch", "update"):
    handler = getattr(objects, name, None)
    if handler is not None:
      wrap[handler] = writing(handler)
  routes = [(regex, {method: wrap.get(f, f) for method, f in handlers.items()})
            for regex, handlers in server.HANDLERS]
  move_route = (r"^/storage/v1/b/(?P<bucket_name>[-.\w]+)/o/(?P<object_id>.*[^/]+)"
                r"/moveTo/o/(?P<dest_object_id>.*[^/]+)$", {"POST": move})
  server.HANDLERS = (move_route, *routes)

  one_at_a_time = threading.Lock()
  handle = server.Router.handle

  def handle_locked(self, method):
    with one_at_a_time:
      return handle(self, method)

  class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

  def run(self):
    self._httpd = ThreadingServer((self._host, self._port),
                                  functools.partial(server.RequestHandler, self._storage))
    self.is_running.set()
    self._httpd.serve_forever()

  server.Router.handle = handle_locked
  server.APIThread.run = run
  server._ssl_jax_patched = True
  return server


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def serve(port: int, buckets: list[str]):
  server = _patch()
  srv = server.create_server("127.0.0.1", port, in_memory=True, default_bucket=buckets[0])
  from gcp_storage_emulator.handlers import buckets as bucket_handlers
  for bucket in buckets[1:]:
    bucket_handlers.create_bucket(bucket, srv._api._storage)
  srv.start()
  return srv


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--port", type=int, default=0)
  parser.add_argument("--buckets", default="test-bucket,readonly-bucket",
                      help="comma-separated buckets to create")
  args = parser.parse_args()
  port = args.port or free_port()
  srv = serve(port, args.buckets.split(","))
  print(f"ready http://127.0.0.1:{port}", flush=True)
  try:
    while True:
      time.sleep(3600)
  except KeyboardInterrupt:
    pass
  finally:
    srv.stop()


if __name__ == "__main__":
  sys.exit(main())
