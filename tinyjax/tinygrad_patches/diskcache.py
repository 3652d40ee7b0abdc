"""tinygrad's disk cache (helpers.diskcache_get/put) keeps one sqlite connection per process, and Python's sqlite3 binds
a connection to the thread that opened it: every use from another thread raises ProgrammingError. The patch makes the
connection per thread (sqlite itself serializes writers across connections: WAL, a 60 s busy timeout, as tinygrad
opens it); a thread's connection closes when the thread ends."""
import contextlib
import os
import sqlite3
import threading

_local = threading.local()


def find():
  from tinygrad import helpers
  return [helpers.db_connection, helpers.diskcache_get, helpers.diskcache_put]


def db_connection():
  """tinygrad.helpers.db_connection, with one connection per thread (the same options and pragmas)."""
  from tinygrad import helpers
  if (conn := getattr(_local, "conn", None)) is None:
    os.makedirs(helpers.CACHEDB.rsplit(os.sep, 1)[0], exist_ok=True)
    conn = _local.conn = sqlite3.connect(helpers.CACHEDB, timeout=60, isolation_level="IMMEDIATE")
    with contextlib.suppress(sqlite3.OperationalError): conn.execute("PRAGMA journal_mode=WAL").fetchone()
    conn.execute("PRAGMA synchronous=NORMAL")
    if helpers.DEBUG >= 8: conn.set_trace_callback(print)
  return conn


def apply(targets, active):
  """diskcache_get/put call db_connection by its global name in tinygrad.helpers: that name is swapped (once)."""
  from tinygrad import helpers
  if helpers.db_connection is db_connection: return
  helpers.db_connection = db_connection
  # a connection tinygrad opened already (tinygrad ran before install()) stays bound to its thread: left to that thread
