#include "sf/http/server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <mutex>
#include <span>
#include <thread>

#include "head.h"
#include "range.h"
#include "sf/net/listener.h"

namespace sf::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;
using boost::system::error_code;

std::string Request::param(std::string_view name) const {
  return std::string(param_view(name));
}

std::string_view Request::param_view(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto pair = q.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return {};
}

bool Request::has_param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto pair = q.substr(0, amp);
    if (pair.substr(0, pair.find('=')) == name) return true;
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return false;
}

std::string Request::header(std::string_view name) const {
  return std::string(header_view(name));
}

std::string_view Request::header_view(std::string_view name) const {
  std::string_view rest(head);
  while (!rest.empty()) {
    auto eol = rest.find("\r\n");
    auto line = rest.substr(0, eol);
    auto colon = line.find(':');
    if (colon == name.size() && std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        })) {
      auto v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      return v;
    }
    if (eol == std::string_view::npos) break;
    rest.remove_prefix(eol + 2);
  }
  return {};
}

FileBody::~FileBody() {
  if (fd >= 0) ::close(fd);
}

namespace {

// Gathered, up to IOV_MAX pieces per writev: a file system with large folios (ext4, xfs) then
// sizes them for the whole write instead of per frame, and sendfile later walks fewer of them
// (1 MB in 40 KB pieces on ext4, /proc/kpageflags: 6 folios gathered, 108 written piece by piece).
// No CPU difference per answer showed through the noise of a loaded machine.
bool write_pieces(int fd, std::span<const Bytes> pieces) {
  std::vector<iovec> iov;
  iov.reserve(std::min<std::size_t>(pieces.size(), IOV_MAX));
  std::size_t next = 0;  // first piece not yet in iov
  while (next < pieces.size() || !iov.empty()) {
    while (next < pieces.size() && iov.size() < IOV_MAX) {
      auto& b = pieces[next++];
      if (b.size()) iov.push_back({const_cast<std::byte*>(b.data()), b.size()});
    }
    if (iov.empty()) break;
    ssize_t n = ::writev(fd, iov.data(), static_cast<int>(iov.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    // Drop what went (a short write leaves the rest of a piece at the front).
    std::size_t left = static_cast<std::size_t>(n), done = 0;
    while (done < iov.size() && left >= iov[done].iov_len) left -= iov[done++].iov_len;
    iov.erase(iov.begin(), iov.begin() + static_cast<std::ptrdiff_t>(done));
    if (left) {
      iov.front().iov_base = static_cast<char*>(iov.front().iov_base) + left;
      iov.front().iov_len -= left;
    }
  }
  return true;
}

std::size_t size_of(std::span<const Bytes> pieces) {
  std::size_t size = 0;
  for (auto& b : pieces) size += b.size();
  return size;
}

}  // namespace

std::shared_ptr<const FileBody> FileBody::unnamed_copy(std::span<const Bytes> pieces, const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return nullptr;
  FileBody writable(fd, size_of(pieces));  // closes fd on every return below
  if (!write_pieces(fd, pieces)) return nullptr;
  // The answers' descriptor is read-only; the writable one goes with `writable`.
  char path[40];
  auto [end, _] = std::to_chars(path, path + 20, fd);
  std::string proc = "/proc/self/fd/" + std::string(path, end);
  int ro = ::open(proc.c_str(), O_RDONLY | O_CLOEXEC);
  if (ro < 0) return nullptr;
  return std::make_shared<const FileBody>(ro, writable.size);
}

std::string FileBody::spare_dir() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? std::string(tmp) : std::string("/var/tmp");
}

std::shared_ptr<const FileBody> FileBody::spare_copy(std::span<const Bytes> pieces) {
  static const std::string dir = spare_dir();
  if (auto file = unnamed_copy(pieces, dir)) return file;
  return sealed_copy(pieces);
}

std::shared_ptr<const FileBody> FileBody::sealed_copy(std::span<const Bytes> pieces) {
  int fd = ::memfd_create("streamflex-body", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return nullptr;
  auto file = std::make_shared<const FileBody>(fd, size_of(pieces));  // closes fd on every return below
  if (!write_pieces(fd, pieces)) return nullptr;
  // Sealed: nothing can change the bytes that every later answer sends.
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) return nullptr;
  return file;
}

std::size_t Response::size() const {
  if (source) return 0;  // not known yet
  if (stream) return stream->size();
  if (file) return file->size;
  std::size_t n = body.size();
  for (auto& p : pieces) n += p.size();
  return n;
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::json(int status, std::string body) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

// The meeting point of a held request and whoever answers it. The connection's coroutine waits on
// `timer`; an answer (from any thread) is posted to the connection's executor, stored, and wakes it.
struct Responder::State {
  explicit State(asio::any_io_executor ex) : executor(ex), timer(ex) {}
  asio::any_io_executor executor;
  asio::steady_timer timer;       // touched on the connection's thread only
  std::atomic<bool> done{false};  // first answer wins
  std::optional<Response> response;
  // The connection's thread while it runs the handler: an answer given there and then is taken
  // directly, with no post and no wait (most requests are answered at once).
  std::atomic<std::thread::id> handler_thread{};
};

void Responder::operator()(Response r) const {
  if (state_->done.exchange(true)) return;
  if (state_->handler_thread.load() == std::this_thread::get_id()) {
    state_->response = std::move(r);
    return;
  }
  asio::post(state_->executor, [s = state_, r = std::move(r)]() mutable {
    s->response = std::move(r);
    s->timer.cancel();
  });
}

bool Responder::answered() const {
  return state_->done.load();
}

void ResponderBatch::add(const Responder& r, Response response) {
  if (r.state_->done.exchange(true)) return;
  if (r.state_->handler_thread.load() == std::this_thread::get_id()) {
    r.state_->response = std::move(response);
    return;
  }
  items_.emplace_back(r.state_, std::move(response));
}

void ResponderBatch::send() {
  using Item = std::pair<std::shared_ptr<Responder::State>, Response>;
  std::vector<std::pair<asio::any_io_executor, std::vector<Item>>> by_thread;  // a few I/O threads
  for (auto& item : items_) {
    auto it =
        std::find_if(by_thread.begin(), by_thread.end(), [&](auto& g) { return g.first == item.first->executor; });
    if (it == by_thread.end()) it = by_thread.insert(by_thread.end(), {item.first->executor, {}});
    it->second.push_back(std::move(item));
  }
  items_.clear();
  for (auto& [ex, items] : by_thread)
    asio::post(ex, [items = std::move(items)]() mutable {
      for (auto& [s, r] : items) {
        s->response = std::move(r);
        s->timer.cancel();
      }
    });
}

// Bodies up to this size go out in the same write as their head (one syscall per playlist);
// larger ones after it.
constexpr std::size_t kSeparateHead = 64 * 1024;

// The most one connection writes per call (write, sendmsg, sendfile) before the other connections
// of its I/O thread get a turn. Without a bound a connection whose socket buffer is large (loopback
// autotunes to megabytes) writes a body of any size while every other viewer waits. nginx bounds
// sendfile the same way (sendfile_max_chunk, 2 MiB). Measured with edge_cache_hit (1 MiB part):
// 256 KiB cost 1.5-2x the CPU per answer of 1 MiB at 100 connections and fewer answers per second
// at 1000 (each body in four turns, the client reading each in more pieces); 1 MiB sends a part in
// one call and still bounds a segment's.
constexpr std::size_t kWriteSlice = 1024 * 1024;

// How often each I/O thread checks its connections' deadlines. Timeouts are seconds long; a coarse
// sweep costs nothing per request, where a timer armed per read and write (beast::tcp_stream)
// costs a timer-queue insert and cancel every time.
constexpr auto kSweepEvery = std::chrono::milliseconds(250);

using Clock = std::chrono::steady_clock;

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  struct Route {
    std::string method;
    std::string path;
    bool prefix = false;
    Handler handler;
    HeldHandler held;
    StreamingHandler streaming;
    std::chrono::milliseconds hold{0};
    Response fallback;
  };

  struct Sweeper;

  // One client connection. Lives on one I/O thread; its buffers are reused from request to request.
  struct Conn {
    explicit Conn(tcp::socket s) : sock(std::move(s)) {}
    tcp::socket sock;
    Sweeper* sweeper = nullptr;
    std::size_t slot = 0;  // index in sweeper->conns
    Clock::time_point deadline = Clock::time_point::max();
    bool timed_out = false;
    std::chrono::milliseconds idle_timeout{30000};  // for writes
    beast::flat_buffer buffer;
    Request req;
    std::string head;                        // the response head being written
    std::vector<asio::const_buffer> out;     // the gather list being written
    std::shared_ptr<Responder::State> held;  // reused while nobody else holds it
    bool late = false;                       // the answer being written came after a hold
    bool corked = false;                     // TCP_CORK set (while a file body is sent)
    std::size_t written = 0;                 // bytes taken by the socket, added by write_all/write_file

    void expires_after(std::chrono::milliseconds d) { deadline = Clock::now() + d; }
    void expires_never() { deadline = Clock::time_point::max(); }
  };

  // The connections of one I/O thread, and the timer that closes those past their deadline. The
  // timer runs only while the thread has connections. Touched on its thread only.
  struct Sweeper {
    Sweeper(asio::io_context& c) : ctx(&c), timer(c) {}
    asio::io_context* ctx;
    asio::steady_timer timer;
    std::vector<Conn*> conns;
    bool armed = false;
  };

  Impl(net::IoPool& p, const net::Endpoint& at, ServerLimits l) : limits(l) {
    // sendfile(2) has no MSG_NOSIGNAL: a viewer that left would raise SIGPIPE and end the process.
    // Ignored process-wide (every write here handles EPIPE as an error of that connection).
    static std::once_flag no_sigpipe;
    std::call_once(no_sigpipe, [] { ::signal(SIGPIPE, SIG_IGN); });
    for (auto* ctx : p.contexts()) sweepers.push_back(std::make_unique<Sweeper>(*ctx));
    listener = std::make_unique<net::Listener>(p, at, [this](tcp::socket s) { on_accept(std::move(s)); });
  }

  Sweeper* sweeper_of(const asio::any_io_executor& ex) {
    auto* ctx = &asio::query(ex, asio::execution::context);
    for (auto& s : sweepers)
      if (static_cast<asio::execution_context*>(s->ctx) == ctx) return s.get();
    return nullptr;
  }

  void add(Conn& c) {
    auto* sw = c.sweeper;
    c.slot = sw->conns.size();
    sw->conns.push_back(&c);
    if (!sw->armed) arm(sw);
  }

  void remove(Conn& c) {
    auto& v = c.sweeper->conns;
    v[c.slot] = v.back();
    v[c.slot]->slot = c.slot;
    v.pop_back();
  }

  void arm(Sweeper* sw) {
    sw->armed = true;
    sw->timer.expires_after(kSweepEvery);
    sw->timer.async_wait([weak = weak_from_this(), sw](error_code ec) {
      auto self = weak.lock();
      if (!self) return;
      sw->armed = false;
      if (ec) return;
      auto now = Clock::now();
      for (auto* c : sw->conns) {
        if (c->deadline > now) continue;
        // Past its deadline (slow-loris, idle keep-alive, a reader that stopped): the pending
        // operation fails and the connection's coroutine ends.
        c->timed_out = true;
        c->deadline = Clock::time_point::max();
        error_code ignored;
        c->sock.close(ignored);
      }
      if (!sw->conns.empty() && !self->stopping) self->arm(sw);
    });
  }

  void on_accept(tcp::socket s) {
    if (active.load() >= limits.max_connections || stopping) {
      error_code ec;
      s.close(ec);
      return;
    }
    auto* sw = sweeper_of(s.get_executor());
    if (!sw) return;  // not one of our contexts: cannot happen
    auto conn = std::make_shared<Conn>(std::move(s));
    conn->sweeper = sw;
    ++active;
    asio::co_spawn(*sw->ctx, serve(shared_from_this(), conn), asio::detached);
  }

  const Route* find(std::string_view method, std::string_view path, bool& path_known) const {
    for (auto& r : routes) {
      if (!(r.prefix ? path.starts_with(r.path) : path == r.path)) continue;
      path_known = true;
      if (r.method == method || (method == "HEAD" && r.method == "GET")) return &r;
    }
    return nullptr;
  }

  // Writes `out` (head and body) to the connection. Small answers go out in one gather write,
  // tried at once without the reactor (a playlist costs one sendmsg and no queued operation);
  // whatever the socket does not take is written asynchronously.
  static asio::awaitable<void> write_response(Conn& conn, Response& out, const Request& req, unsigned version,
                                              bool keep_alive, bool cors, error_code& ec) {
    // Range (RFC 9110 14.2): one range of a 200 answer becomes 206 with the slice of the pieces.
    std::size_t total = out.size();
    std::optional<ByteRange> slice;
    // A body of unknown length cannot be sliced before it exists; RFC 9110 14.2 lets a server
    // ignore Range and answer 200 with the whole of it.
    if (out.status == 200 && !out.source) {
      std::string range = req.header("range");
      if (!range.empty()) {
        auto r = parse_range(range, total);
        if (!r) {
          out = Response::text(416, "range not satisfiable\n");
          out.headers.emplace_back("Content-Range", "bytes */" + std::to_string(total));
          total = out.size();
        } else {
          slice = *r;
          out.status = 206;
          out.headers.emplace_back("Content-Range", "bytes " + std::to_string(r->first) + "-" +
                                                        std::to_string(r->first + r->length - 1) + "/" +
                                                        std::to_string(total));
        }
      }
    }
    std::string& head = conn.head;
    head.clear();
    head.append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    char num[24];
    auto put_number = [&](std::size_t v) {
      auto [end, _] = std::to_chars(num, num + sizeof(num), v);
      head.append(num, end);
    };
    put_number(static_cast<std::size_t>(out.status));
    head.push_back(' ');
    head.append(bhttp::obsolete_reason(static_cast<bhttp::status>(out.status)));
    head.append("\r\nServer: streamflex\r\nContent-Type: ");
    head.append(out.content_type);
    if ((out.status == 200 || out.status == 206) && !out.source) head.append("\r\nAccept-Ranges: bytes");
    for (auto& [k, v] : out.headers) {
      head.append("\r\n");
      head.append(k);
      head.append(": ");
      head.append(v);
    }
    if (cors)
      head.append(
          "\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Expose-Headers: Content-Length, Content-Range, Age, "
          "Date");
    std::size_t body_bytes = slice ? slice->length : total;
    // RFC 9112 7.1: chunked coding for HTTP/1.1; an HTTP/1.0 client reads to the connection's end.
    bool chunked = out.source && version != 10;
    if (out.source && !chunked) keep_alive = false;
    if (chunked) {
      head.append("\r\nTransfer-Encoding: chunked");
    } else if (!out.source) {
      head.append("\r\nContent-Length: ");
      put_number(body_bytes);
    }
    if (!keep_alive)
      head.append("\r\nConnection: close");
    else if (version == 10)
      head.append("\r\nConnection: keep-alive");
    head.append("\r\n\r\n");

    conn.expires_after(conn.idle_timeout);
    bool head_only = req.method == "HEAD";
    bool late = conn.late;
    conn.late = false;
    if (out.file && !late && !head_only && body_bytes > 0) {
      // Answered at once (a hit, an origin part): the head goes out corked (see cork()), so the
      // kernel sends it in the same segments as the file's first bytes, not alone (one wake-up and
      // read less for the client; nginx does the same with tcp_nopush). Whatever the socket does
      // not take now is written normally.
      cork(conn, true);
      std::size_t sent = conn.sock.send(asio::buffer(head), 0, ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
        sent = 0;
      }
      if (ec) co_return;
      if (sent < head.size()) {
        conn.out.clear();
        conn.out.emplace_back(head.data() + sent, head.size() - sent);
        co_await write_all(conn, ec);
        if (ec) co_return;
      }
      head.clear();
    } else if (head_only || (late && body_bytes > kSeparateHead) || out.stream || out.file || out.source) {
      // A large body answering a held request goes after its head, and after a turn of the event
      // loop: when many held requests are answered at once (coalesced waiters), every head leaves
      // before any large body fills the sockets. Answered at once, a large gather body goes with its
      // head (below).
      conn.out.clear();
      conn.out.emplace_back(head.data(), head.size());
      co_await write_all(conn, ec);
      if (ec || head_only) co_return;
      co_await asio::post(conn.sock.get_executor(), asio::use_awaitable);
      head.clear();
    }

    if (out.file) {
      conn.written = 0;
      co_await write_file(conn, *out.file, slice ? slice->first : 0, body_bytes, ec);
      if (out.on_sent) out.on_sent(conn.written);
      co_return;
    }
    if (out.stream) {
      std::size_t from = slice ? slice->first : 0;
      co_await write_stream(conn, *out.stream, from, from + body_bytes, out.on_sent, ec);
      co_return;
    }
    if (out.source) {
      co_await write_source(conn, *out.source, chunked, out.on_sent, ec);
      // Without chunked coding only the connection's end delimits the body.
      if (!ec && !chunked) ec = asio::error::eof;
      co_return;
    }
    // Gather the body: the owned string, then the shared pieces, sliced to the range if any.
    auto& buffers = conn.out;
    buffers.clear();
    std::size_t head_bytes = head.size();  // 0 if it went before
    if (head_bytes) buffers.emplace_back(head.data(), head_bytes);
    std::size_t skip = slice ? slice->first : 0;
    std::size_t left = body_bytes;
    auto add = [&](const void* data, std::size_t size) {
      if (left == 0) return;
      if (skip >= size) {
        skip -= size;
        return;
      }
      std::size_t n = std::min(size - skip, left);
      buffers.emplace_back(static_cast<const char*>(data) + skip, n);
      skip = 0;
      left -= n;
    };
    add(out.body.data(), out.body.size());
    for (auto& p : out.pieces) add(p.data(), p.size());
    conn.written = 0;
    co_await write_all(conn, ec);
    if (out.on_sent) out.on_sent(conn.written > head_bytes ? conn.written - head_bytes : 0);
  }

  // Sends `len` bytes of `file` from `from` with sendfile(2) on the non-blocking socket, at most
  // kWriteSlice per call and a turn of the event loop between slices (write fairness, see
  // kWriteSlice), waiting for room in the socket when it is full; the write deadline applies to
  // each wait.
  static asio::awaitable<void> write_file(Conn& conn, const FileBody& file, std::size_t from, std::size_t len,
                                          error_code& ec) {
    cork(conn, true);
    co_await write_file_corked(conn, file, from, len, ec);
    cork(conn, false);  // the last partial segment leaves now
  }

  // TCP_CORK on or off (nginx's tcp_nopush). While a file body is sent, the connection is corked:
  // sendfile(2) hands the socket the file 64 KiB (one pipe) at a time, and with TCP_NODELAY alone
  // the kernel pushed each of those as it came, in smaller segments. Measured on a 1 MB part
  // (origin_throughput, 100 connections, loopback): 35 packets sent per answer uncorked against
  // nginx's 20 (net:net_dev_xmit), 1.4x nginx's CPU per answer; corked 20 packets and 1.02x.
  static void cork(Conn& conn, bool on) {
    if (conn.corked == on) return;
    int v = on ? 1 : 0;
    ::setsockopt(conn.sock.native_handle(), IPPROTO_TCP, TCP_CORK, &v, sizeof(v));
    conn.corked = on;
  }

  static asio::awaitable<void> write_file_corked(Conn& conn, const FileBody& file, std::size_t from, std::size_t len,
                                                 error_code& ec) {
    off_t offset = static_cast<off_t>(from);
    std::size_t left = len;
    while (left > 0) {
      std::size_t want = std::min(left, kWriteSlice);
      ssize_t n = ::sendfile(conn.sock.native_handle(), file.fd, &offset, want);
      if (n > 0) {
        left -= static_cast<std::size_t>(n);
        conn.written += static_cast<std::size_t>(n);
        if (left == 0) break;
        if (static_cast<std::size_t>(n) == want) {
          co_await asio::post(conn.sock.get_executor(), asio::use_awaitable);
          continue;
        }
        // Partial: the socket is full; wait for room rather than fail the next call.
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (!(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) {
        ec = n == 0 ? error_code(asio::error::eof) : error_code(errno, boost::system::system_category());
        co_return;
      }
      conn.expires_after(conn.idle_timeout);
      co_await conn.sock.async_wait(tcp::socket::wait_write, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
    }
  }

  // Writes [from, to) of a body still arriving, each time as much as has arrived. While caught up
  // the connection waits for the producer's wake-up (no polling); the write deadline applies to
  // each write, so a viewer that stops reading is cut off, and one that reads slowly holds nothing
  // but its position in the shared block.
  static asio::awaitable<void> write_stream(Conn& conn, const SharedBody& body, std::size_t from, std::size_t to,
                                            const std::function<void(std::size_t)>& on_sent, error_code& ec) {
    std::shared_ptr<asio::steady_timer> wait;
    std::size_t pos = from;
    while (pos < to) {
      std::size_t ready = std::min(body.available(), to);
      if (ready > pos) {
        conn.out.clear();
        conn.out.emplace_back(body.data() + pos, ready - pos);
        conn.expires_after(conn.idle_timeout);
        conn.written = 0;
        co_await write_all(conn, ec);
        if (on_sent) on_sent(conn.written);
        if (ec) co_return;
        pos = ready;
        continue;
      }
      if (body.failed()) {
        // The response cannot be completed: closing is the only honest end (RFC 9112 §6.3).
        ec = asio::error::connection_aborted;
        co_return;
      }
      if (!wait) wait = std::make_shared<asio::steady_timer>(conn.sock.get_executor());
      // The producer has its own deadline and fails the body when it passes; this is a backstop.
      wait->expires_after(conn.idle_timeout);
      conn.expires_never();
      body.when_beyond(pos, conn.sock.get_executor(), [w = std::weak_ptr(wait)] {
        if (auto t = w.lock()) t->cancel();
      });
      error_code wait_ec;
      co_await wait->async_wait(asio::redirect_error(asio::use_awaitable, wait_ec));
      if (!wait_ec && body.available() <= pos && !body.failed()) {
        ec = asio::error::timed_out;
        co_return;
      }
    }
  }

  // Writes a body of unknown length as its producer publishes it: whatever is there, then each new
  // batch of pieces as one chunk (RFC 9112 7.1) the moment the producer wakes this connection, and
  // the last-chunk once it ended. The pieces are the producer's own buffers, gathered. The write
  // deadline applies to each write (a reader that stops is cut off); while caught up the
  // connection waits for the wake-up, with a backstop of the idle timeout. A failed body closes
  // the connection without the last-chunk, so the client sees it incomplete.
  static asio::awaitable<void> write_source(Conn& conn, const BodySource& body, bool chunked,
                                            const std::function<void(std::size_t)>& on_sent, error_code& ec) {
    std::vector<Bytes> pieces;  // held while written
    std::shared_ptr<asio::steady_timer> wait;
    std::size_t pos = 0;
    char size_line[24];
    for (;;) {
      pieces.clear();
      auto progress = body.read(pos, pieces);
      if (progress.failed) {
        ec = asio::error::connection_aborted;
        co_return;
      }
      std::size_t n = 0;
      for (auto& p : pieces) n += p.size();
      if (n > 0 || progress.ended) {
        conn.out.clear();
        std::size_t framing = 0;  // the chunk-size line before the data
        if (n > 0) {
          if (chunked) {
            auto [end, _] = std::to_chars(size_line, size_line + sizeof(size_line) - 2, n, 16);
            *end++ = '\r';
            *end++ = '\n';
            framing = static_cast<std::size_t>(end - size_line);
            conn.out.emplace_back(size_line, framing);
          }
          for (auto& p : pieces)
            if (p.size()) conn.out.emplace_back(p.data(), p.size());
          if (chunked) conn.out.emplace_back("\r\n", 2);
        }
        if (progress.ended && chunked) conn.out.emplace_back("0\r\n\r\n", 5);
        conn.expires_after(conn.idle_timeout);
        conn.written = 0;
        co_await write_all(conn, ec);
        if (on_sent && n > 0) on_sent(std::min(n, conn.written > framing ? conn.written - framing : 0));
        if (ec || progress.ended) co_return;
        pos = progress.next;
        continue;
      }
      pos = progress.next;
      if (!wait) wait = std::make_shared<asio::steady_timer>(conn.sock.get_executor());
      wait->expires_after(conn.idle_timeout);
      conn.expires_never();
      body.when_beyond(pos, conn.sock.get_executor(), [w = std::weak_ptr(wait)] {
        if (auto t = w.lock()) t->cancel();
      });
      error_code wait_ec;
      co_await wait->async_wait(asio::redirect_error(asio::use_awaitable, wait_ec));
      if (!wait_ec) {
        ec = asio::error::timed_out;  // the producer made nothing within the idle timeout
        co_return;
      }
    }
  }

  // Writes conn.out on the non-blocking socket, at most kWriteSlice per call: a full slice is
  // followed by a turn of the event loop, a full socket by a wait for room (no asio::async_write,
  // which would write this connection's whole body before any other connection's turn).
  static asio::awaitable<void> write_all(Conn& conn, error_code& ec) {
    auto& bufs = conn.out;
    std::size_t first = 0;
    std::array<asio::const_buffer, 64> slice;  // sendmsg's gather limit in Asio
    while (first < bufs.size()) {
      std::size_t count = 0, bytes = 0;
      for (std::size_t i = first; i < bufs.size() && count < slice.size() && bytes < kWriteSlice; ++i) {
        auto b = bufs[i];
        if (b.size() > kWriteSlice - bytes) b = asio::const_buffer(b.data(), kWriteSlice - bytes);
        slice[count++] = b;
        bytes += b.size();
      }
      std::size_t written = conn.sock.write_some(std::span(slice.data(), count), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
        written = 0;
      }
      if (ec) co_return;
      conn.written += written;
      std::size_t n = written;
      while (first < bufs.size() && n >= bufs[first].size()) n -= bufs[first++].size();
      if (n) bufs[first] += n;
      if (first == bufs.size()) co_return;
      if (written == bytes && bytes == kWriteSlice) {
        // A whole slice went: let the other connections of this thread have their turn.
        co_await asio::post(conn.sock.get_executor(), asio::use_awaitable);
        continue;
      }
      if (written == bytes) continue;  // more than 64 buffers in the slice: the next ones at once
      // The socket took less than offered: it is full, wait for room.
      conn.expires_after(conn.idle_timeout);
      co_await conn.sock.async_wait(tcp::socket::wait_write, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
    }
  }

  static void fill_request(Request& req, std::string_view method, std::string_view target) {
    req.method.assign(method);
    auto q = target.find('?');
    req.path.assign(target.substr(0, q));
    if (q != std::string_view::npos)
      req.query.assign(target.substr(q + 1));
    else
      req.query.clear();
    req.body.clear();
  }

  static void request_of(Request& req, const bhttp::request_header<>& raw) {
    fill_request(req, raw.method_string(), raw.target());
    req.head.clear();
    for (auto& f : raw) {
      req.head.append(f.name_string());
      req.head.append(": ");
      req.head.append(f.value());
      req.head.append("\r\n");
    }
  }

  // Streams a request body to the route's sink, 64 KiB at a time. Returns whether the connection
  // may serve another request.
  static asio::awaitable<bool> stream_body(std::shared_ptr<Impl> self, Conn& conn,
                                           bhttp::request_parser<bhttp::empty_body>& head, const Route& route,
                                           std::optional<std::size_t> body_limit, error_code& ec) {
    Request& req = conn.req;
    request_of(req, head.get());
    unsigned version = head.get().version();
    bool keep_alive = head.get().keep_alive() && !self->stopping;
    auto decision = route.streaming(req);
    Response out;
    bool read_all = true;
    if (auto* refusal = std::get_if<Response>(&decision)) {
      out = std::move(*refusal);
      read_all = head.is_done();
    } else {
      auto sink = std::move(std::get<std::unique_ptr<BodySink>>(decision));
      bhttp::request_parser<bhttp::buffer_body> parser{std::move(head)};
      if (body_limit)
        parser.body_limit(*body_limit);
      else
        parser.body_limit(boost::none);  // long-running uploads: each read still has the idle timeout
      std::vector<char> piece(64 * 1024);
      while (!parser.is_done()) {
        parser.get().body().data = piece.data();
        parser.get().body().size = piece.size();
        conn.expires_after(self->limits.idle_timeout);
        co_await bhttp::async_read(conn.sock, conn.buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == bhttp::error::need_buffer) ec = {};
        if (ec) break;
        std::size_t n = piece.size() - parser.get().body().size;
        if (n && !sink->on_data(ByteView(reinterpret_cast<const std::byte*>(piece.data()), n))) {
          read_all = false;
          break;
        }
      }
      if (ec && ec != bhttp::error::body_limit) co_return false;  // the peer left mid-body
      out = ec ? Response::text(413, "body too large\n") : sink->finish();
      if (ec) read_all = false;
      ec = {};
    }
    bool keep = keep_alive && read_all;
    co_await write_response(conn, out, req, version, keep, self->limits.cors, ec);
    co_return keep && !ec;
  }

  // Answers one request whose head (and body, if any) has been read: CORS preflight, route,
  // held route or 404/405; then writes the answer.
  static asio::awaitable<void> answer(std::shared_ptr<Impl> self, Conn& conn, unsigned version, bool keep_alive,
                                      error_code& ec) {
    Request& req = conn.req;
    req.version = version;
    Response out;
    bool path_known = false;
    const Route* route = self->find(req.method, req.path, path_known);
    if (req.method == "OPTIONS" && self->limits.cors) {
      out = Response::text(204, "");
      out.headers.emplace_back("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS, PUT, POST, DELETE");
      out.headers.emplace_back("Access-Control-Allow-Headers", "*");
      out.headers.emplace_back("Access-Control-Max-Age", "86400");
    } else if (!route) {
      out = path_known ? Response::text(405, "method not allowed\n") : Response::text(404, "not found\n");
    } else if (route->held) {
      // The meeting point with whoever answers: reused while no earlier answerer still holds it.
      if (!conn.held || conn.held.use_count() != 1) {
        conn.held = std::make_shared<Responder::State>(conn.sock.get_executor());
      } else {
        conn.held->done = false;
        conn.held->response.reset();
      }
      auto state = conn.held;
      state->handler_thread = std::this_thread::get_id();
      route->held(req, Responder(state));
      state->handler_thread = std::thread::id{};
      conn.late = !state->response;
      if (!state->response) {
        // Wait for the answer or the hold time; a client that leaves meanwhile is noticed at write.
        state->timer.expires_after(route->hold);
        conn.expires_never();
        co_await state->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      if (state->response) {
        out = std::move(*state->response);
        state->response.reset();
      } else {
        state->done = true;  // later answers are ignored
        out = route->fallback;
      }
      ec = {};
    } else {
      out = route->handler(req);
    }
    co_await write_response(conn, out, req, version, keep_alive, self->limits.cors, ec);
  }

  // The full parser, for every head the fast path does not take (bodies, unusual framing, heads
  // split over several reads, malformed ones). Returns whether the connection may continue.
  static asio::awaitable<bool> serve_full(std::shared_ptr<Impl> self, Conn& conn, error_code& ec) {
    bhttp::request_parser<bhttp::empty_body> head;
    head.header_limit(static_cast<std::uint32_t>(self->limits.max_header_bytes));
    head.body_limit(self->limits.max_body_bytes);
    co_await bhttp::async_read_header(conn.sock, conn.buffer, head, asio::redirect_error(asio::use_awaitable, ec));
    std::optional<std::size_t> route_limit;  // set by body_limit() for this path, if any
    if (!ec) {
      std::string_view target(head.get().target());
      for (auto& [prefix, bytes] : self->body_limits)
        if (target.starts_with(prefix)) route_limit = bytes;
      bool path_known = false;
      if (const Route* r = self->find(head.get().method_string(), target.substr(0, target.find('?')), path_known);
          r && r->streaming) {
        bool keep = co_await stream_body(self, conn, head, *r, route_limit, ec);
        co_return keep && !ec;
      }
    }
    bhttp::request_parser<bhttp::string_body> parser{std::move(head)};
    if (!ec && !parser.is_done()) {
      parser.body_limit(route_limit.value_or(self->limits.max_body_bytes));
      // A large body may take longer than the header: allow the idle time per read.
      conn.expires_after(self->limits.idle_timeout);
      co_await bhttp::async_read(conn.sock, conn.buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec) {
      int status = 0;
      if (conn.timed_out) {
        status = 0;
        if (self->refused) self->refused(408, conn.req.remote);  // a head (or body) that stopped coming
      } else if (ec == bhttp::error::header_limit)
        status = 431;
      else if (ec == bhttp::error::body_limit)
        status = 413;
      else if (ec != bhttp::error::end_of_stream && ec != asio::error::operation_aborted &&
               ec != asio::error::connection_reset && ec != asio::error::eof && ec != asio::error::bad_descriptor)
        status = 400;  // malformed, including conflicting Content-Length / Transfer-Encoding
      if (status) {
        if (self->refused) self->refused(status, conn.req.remote);
        Response r = Response::text(status, ec.message() + "\n");
        Request none;
        conn.idle_timeout = std::chrono::seconds(2);
        co_await write_response(conn, r, none, 11, false, false, ec);
      }
      co_return false;
    }
    auto& raw = parser.get();
    request_of(conn.req, raw.base());
    conn.req.body = std::move(raw.body());
    bool keep_alive = raw.keep_alive() && !self->stopping;
    co_await answer(self, conn, raw.version(), keep_alive, ec);
    co_return !ec && keep_alive;
  }

  static asio::awaitable<void> serve(std::shared_ptr<Impl> self, std::shared_ptr<Conn> c) {
    Conn& conn = *c;
    error_code ec;
    self->add(conn);
    conn.idle_timeout = self->limits.idle_timeout;
    conn.sock.non_blocking(true, ec);
    if (auto ep = conn.sock.remote_endpoint(ec); !ec) conn.req.remote = ep.address().to_string();
    conn.req.executor = conn.sock.get_executor();
    bool first = true;
    for (;;) {
      if (conn.buffer.size() == 0) {
        // A kept-alive connection may idle until the next request begins; a new one must send its
        // head within the header timeout.
        conn.expires_after(first ? self->limits.header_timeout : self->limits.idle_timeout);
        auto n = co_await conn.sock.async_read_some(conn.buffer.prepare(4096),
                                                    asio::redirect_error(asio::use_awaitable, ec));
        conn.buffer.commit(n);
        if (ec) break;
      }
      first = false;
      // ...and every request head, first or not, must then arrive within the header timeout
      // (slow-loris).
      conn.expires_after(self->limits.header_timeout);
      SimpleHead sh;
      std::string_view in(static_cast<const char*>(conn.buffer.data().data()), conn.buffer.size());
      bool fast = parse_simple_head(in, sh) == HeadParse::simple && sh.size <= self->limits.max_header_bytes;
      if (fast) {
        std::string_view target = sh.target;
        bool path_known = false;
        const Route* r = self->find(sh.method, target.substr(0, target.find('?')), path_known);
        fast = !(r && r->streaming);  // a streaming route reads its head with the full parser
      }
      if (!fast) {
        if (!co_await serve_full(self, conn, ec)) break;
        continue;
      }
      fill_request(conn.req, sh.method, sh.target);
      conn.req.head.assign(sh.fields);
      unsigned version = sh.version;
      bool keep_alive = sh.keep_alive && !self->stopping;
      conn.buffer.consume(sh.size);
      co_await answer(self, conn, version, keep_alive, ec);
      if (ec || !keep_alive) break;
    }
    conn.sock.shutdown(tcp::socket::shutdown_send, ec);
    conn.sock.close(ec);
    self->remove(conn);
    --self->active;
  }

  ServerLimits limits;
  std::vector<Route> routes;
  std::vector<std::pair<std::string, std::size_t>> body_limits;
  Server::RefusedHook refused;
  std::vector<std::unique_ptr<Sweeper>> sweepers;
  std::unique_ptr<net::Listener> listener;
  std::atomic<std::size_t> active{0};
  std::atomic<bool> stopping{false};
};

Server::Server(net::IoPool& pool, const net::Endpoint& at, ServerLimits limits)
    : impl_(std::make_shared<Impl>(pool, at, limits)) {}

Server::~Server() = default;

void Server::route(std::string method, std::string path, Handler h) {
  impl_->routes.push_back({std::move(method), std::move(path), false, std::move(h), {}, {}, {}, {}});
}

void Server::route_prefix(std::string method, std::string prefix, Handler h) {
  impl_->routes.push_back({std::move(method), std::move(prefix), true, std::move(h), {}, {}, {}, {}});
}

void Server::route_held(std::string method, std::string prefix, std::chrono::milliseconds hold, Response fallback,
                        HeldHandler h) {
  impl_->routes.push_back(
      {std::move(method), std::move(prefix), true, {}, std::move(h), {}, hold, std::move(fallback)});
}

void Server::route_streaming(std::string method, std::string prefix, StreamingHandler h) {
  Impl::Route r;
  r.method = std::move(method);
  r.path = std::move(prefix);
  r.prefix = true;
  r.streaming = std::move(h);
  impl_->routes.push_back(std::move(r));
}

void Server::body_limit(std::string prefix, std::size_t bytes) {
  impl_->body_limits.emplace_back(std::move(prefix), bytes);
}

void Server::on_refused(RefusedHook hook) {
  impl_->refused = std::move(hook);
}

void Server::start() {
  impl_->listener->start();
}

void Server::stop() {
  impl_->stopping = true;
  impl_->listener->close();
  for (auto& sw : impl_->sweepers)
    asio::post(*sw->ctx, [impl = impl_, sw = sw.get()] {
      for (auto* c : sw->conns) {
        error_code ec;
        c->sock.close(ec);
      }
      sw->timer.cancel();
    });
}

std::uint16_t Server::port() const {
  return impl_->listener->port();
}

std::size_t Server::active_connections() const {
  return impl_->active.load();
}

}  // namespace sf::http
