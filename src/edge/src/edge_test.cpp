#include "sf/edge/edge.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sf/auth/token.h"
#include "sf/http/client.h"
#include "sf/http/server.h"

namespace sf::edge {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kPart = "/live/s/video/s5.p2.m4s";
constexpr const char* kImmutable = "public, max-age=31536000, immutable";
constexpr std::size_t kPartBytes = 200 * 1024;

// A deterministic body: every client can check every byte it got against it.
std::string part_body(std::size_t size = kPartBytes) {
  std::string s(size, '\0');
  std::uint32_t x = 2463534242u;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return s;
}

http::Response object_response(const Bytes& body, const std::string& cache_control) {
  http::Response r;
  r.content_type = "video/iso.segment";
  r.pieces.push_back(body);
  r.headers.emplace_back("Cache-Control", cache_control);
  return r;
}

// 1,000 clients, their server-side sockets and the upstream's, in one process.
void raise_open_files() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t want = std::min<rlim_t>(rl.rlim_max, 16384);
  if (rl.rlim_cur < want) {
    rl.rlim_cur = want;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Polls `pred` until it holds or `timeout` passes; returns whether it held.
template <class Pred>
bool eventually(Pred pred, Clock::duration timeout, Clock::duration interval = 2ms) {
  auto deadline = Clock::now() + timeout;
  std::mutex m;
  std::condition_variable cv;
  std::unique_lock lock(m);
  while (!pred()) {
    if (Clock::now() >= deadline) return false;
    cv.wait_for(lock, interval);  // nothing notifies it: the pause between polls
  }
  return true;
}

// Stops `server` and lets `pool` run until the server's connections have ended, then joins it.
// Stopping a multi-context pool with connections still open would leave coroutine frames that
// own sockets of several contexts to be destroyed context by context: a use after free.
template <class Open>
void drain(net::IoPool& pool, Open open_connections) {
  bool drained = eventually([&] { return open_connections() == 0; }, 5s);
  EXPECT_TRUE(drained) << open_connections() << " connections still open 5 s after stop()";
  if (!drained) pool.stop();
  pool.join();
}

// An upstream origin on one I/O thread. /live/ requests are counted per path; paths in `objects`
// are answered at once, all others are held until the test calls answer_held().
struct Upstream {
  struct Object {
    Bytes body;
    std::string cache_control;
    std::string content_type;
  };

  Upstream() : pool(1), server(pool, net::Endpoint{"127.0.0.1", 0}) {
    server.route_held("GET", "/live/", 30s, http::Response::text(503, "late\n"),
                      [this](const http::Request& req, http::Responder res) {
                        std::lock_guard lock(mu);
                        ++counts[req.path];
                        if (!first_request) first_request = Clock::now();
                        if (auto it = objects.find(req.path); it != objects.end()) {
                          auto r = object_response(it->second.body, it->second.cache_control);
                          if (!it->second.content_type.empty()) r.content_type = it->second.content_type;
                          if (away) r.headers.emplace_back("X-SF-Source", "away");
                          res(std::move(r));
                          return;
                        }
                        if (gone.contains(req.path)) {
                          res(http::Response::text(404, "not here\n"));
                          return;
                        }
                        held.push_back(std::move(res));
                      });
    server.route("GET", "/healthz", [this](http::Request&) {
      ++probes;
      return http::Response::text(200, "ok\n");
    });
    pool.start();
    server.start();
  }
  ~Upstream() { stop(); }

  void stop() {
    if (stopped) return;
    stopped = true;
    server.stop();
    drain(pool, [&] { return server.active_connections(); });
  }

  void add(std::string path, std::string body, std::string cache_control, std::string content_type = {}) {
    std::lock_guard lock(mu);
    objects[std::move(path)] = {Bytes::copy_of(as_bytes(body)), std::move(cache_control), std::move(content_type)};
  }
  void remove(const std::string& path) {
    std::lock_guard lock(mu);
    objects.erase(path);
  }
  void mark_gone(std::string path) {
    std::lock_guard lock(mu);
    gone.insert(std::move(path));
  }
  int count(const std::string& path) {
    std::lock_guard lock(mu);
    return counts[path];
  }
  int total() {
    std::lock_guard lock(mu);
    int n = 0;
    for (auto& [_, c] : counts) n += c;
    return n;
  }
  std::size_t held_count() {
    std::lock_guard lock(mu);
    return held.size();
  }
  std::optional<Clock::time_point> first() {
    std::lock_guard lock(mu);
    return first_request;
  }
  // Answers every held request with `r`; returns the moment it did.
  Clock::time_point answer_held(const http::Response& r) {
    std::vector<http::Responder> now;
    {
      std::lock_guard lock(mu);
      now.swap(held);
    }
    auto at = Clock::now();
    for (auto& res : now) res(r);
    return at;
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server.port()); }

  net::IoPool pool;
  http::Server server;
  std::mutex mu;
  std::map<std::string, Object> objects;
  std::map<std::string, int> counts;
  std::set<std::string> gone;     // answered 404 (anything else unknown is held)
  std::atomic<bool> away{false};  // objects answered with X-SF-Source: away (the stream's source left)
  std::vector<http::Responder> held;
  std::optional<Clock::time_point> first_request;
  std::atomic<int> probes{0};
  bool stopped = false;
};

// An edge on its own two I/O threads with its own metrics.
struct EdgeUnderTest {
  explicit EdgeUnderTest(std::vector<std::string> upstreams, Config config = {},
                         std::shared_ptr<AccessLog> access = nullptr, std::size_t threads = 2)
      : pool(threads) {
    config.listen = "127.0.0.1:0";
    config.upstreams = std::move(upstreams);
    config.id = "edge-under-test";
    edge.emplace(pool, config, metrics);
    if (access) edge->set_access_log(std::move(access));
    pool.start();
    edge->start();
  }
  ~EdgeUnderTest() {
    edge->stop();
    drain(pool, [&] { return metric("streamflex_edge_connections_active"); });
  }
  net::Endpoint endpoint() const { return {"127.0.0.1", edge->port()}; }

  // A sample's value from /metrics text: the line of `name` carrying every label given
  // (`result="failed"`), or -1 if there is none.
  double metric(std::string_view name, std::initializer_list<std::string_view> labels = {}) const {
    std::istringstream in(metrics.serialize());
    std::string line;
    while (std::getline(in, line)) {
      if (!line.starts_with(name) || line.size() <= name.size()) continue;
      char next = line[name.size()];
      if (next != '{' && next != ' ') continue;
      if (!std::all_of(labels.begin(), labels.end(), [&](auto l) { return line.find(l) != std::string::npos; }))
        continue;
      return std::stod(line.substr(line.rfind(' ') + 1));
    }
    return -1;
  }

  net::IoPool pool;
  Metrics metrics;
  std::optional<Edge> edge;
};

// Runs one client coroutine to completion on `ctx` (the test thread) and returns its result.
template <class T>
T run_on(asio::io_context& ctx, asio::awaitable<T> a) {
  std::optional<T> out;
  std::exception_ptr error;
  asio::co_spawn(ctx, std::move(a), [&](std::exception_ptr e, T v) {
    error = e;
    if (!e) out = std::move(v);
  });
  ctx.run_for(20s);
  ctx.restart();
  if (error) std::rethrow_exception(error);
  if (!out) {
    ADD_FAILURE() << "client coroutine did not finish in 20 s";
    return T{};
  }
  return std::move(*out);
}

// One GET on its own connection through `at`, with extra headers.
http::ClientResponse get(net::Endpoint at, const std::string& target,
                         std::vector<std::pair<std::string, std::string>> headers = {}) {
  asio::io_context ctx;
  http::Connection c(ctx.get_executor(), at);
  auto r = run_on(ctx, c.request("GET", target, std::move(headers), 10s));
  if (!r) {
    ADD_FAILURE() << "GET " << target << ": " << r.error().message();
    return {};
  }
  return std::move(*r);
}

// ---- many raw viewers ----------------------------------------------------------------------

// What one raw HTTP/1.1 client saw.
struct Reply {
  std::string error;
  int status = 0;
  std::string x_cache;
  Clock::time_point head_at;  // when the client read the head's "\r\n\r\n"
  // When the head's first byte reached the client's socket (the kernel's receive timestamp,
  // SO_TIMESTAMPNS, CLOCK_REALTIME): independent of when the client's thread got round to reading it.
  std::chrono::system_clock::time_point head_arrived;
  bool head_arrived_known = false;
  // When the segment that completed the body reached the client's socket (as head_arrived).
  std::chrono::system_clock::time_point body_arrived;
  bool body_arrived_known = false;
  std::size_t body_bytes = 0;
  bool body_matches = false;  // every byte equal to the expected body
  bool done = false;
};

struct Crowd {
  explicit Crowd(std::size_t n) : replies(n) {}
  std::vector<Reply> replies;
  std::atomic<std::size_t> sent{0};
  // Clients whose answer has begun to arrive. They read nothing more until release(): while the
  // heads fan out, the test's own 1,000 clients take no CPU from the server under test.
  std::atomic<std::size_t> readable{0};
  std::optional<asio::steady_timer> hold;  // on the clients' context
  bool released = false;                   // read and written on the clients' context only
  asio::any_io_executor clients;

  // Waits until every client's answer has begun to arrive, at most `timeout`.
  bool wait_heads(Clock::duration timeout) {
    auto deadline = Clock::now() + timeout;
    while (readable < replies.size() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    return readable == replies.size();
  }
  // Lets every client read its answer.
  void release() {
    std::promise<void> done;
    asio::post(clients, [&] {
      released = true;
      if (hold) hold->cancel();
      done.set_value();
    });
    done.get_future().wait();
  }
  std::mutex mu;
  std::condition_variable cv;
  std::size_t finished = 0;

  void finish_one() {
    std::lock_guard lock(mu);
    ++finished;
    cv.notify_all();
  }
  bool wait_all(Clock::duration timeout) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return finished == replies.size(); });
  }
};

std::string_view header_of(std::string_view head, std::string_view name) {
  auto at = head.find(name);
  if (at == std::string_view::npos) return {};
  auto v = head.substr(at + name.size());
  return v.substr(0, v.find("\r\n"));
}

// recv(2) with the kernel's receive timestamp (SO_TIMESTAMPNS) of the last segment it read, if any.
ssize_t recv_stamped(int fd, void* data, std::size_t size, std::optional<std::chrono::system_clock::time_point>& at) {
  iovec iov{data, size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT);
  if (n <= 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
    timespec ts{};
    std::memcpy(&ts, CMSG_DATA(c), sizeof(ts));
    at = std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
        std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
  }
  return n;
}

// A bare Asio client: one connection, one GET, the head timed on arrival, the body checked
// against `expected` as it comes in (no copy of 200 MB kept around).
asio::awaitable<void> raw_get(tcp::endpoint at, std::string target, const std::string& expected, Reply& out,
                              Crowd& crowd) {
  auto ex = co_await asio::this_coro::executor;
  tcp::socket s(ex);
  boost::system::error_code ec;
  auto token = asio::redirect_error(asio::use_awaitable, ec);
  std::string buffer;
  std::size_t head_len = 0;
  co_await s.async_connect(at, token);
  if (!ec) {
    int on = 1;
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
    std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    co_await asio::async_write(s, asio::buffer(request), token);
    ++crowd.sent;
  }
  if (!ec) co_await s.async_wait(tcp::socket::wait_read, token);
  ++crowd.readable;
  if (!ec && !crowd.released) {
    boost::system::error_code ignored;
    co_await crowd.hold->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  if (!ec) {
    // The first byte alone, with the receive timestamp of the segment that carried it: the head's
    // (the server writes a held answer's head before its body).
    char first = 0;
    std::optional<std::chrono::system_clock::time_point> at;
    if (recv_stamped(s.native_handle(), &first, 1, at) == 1) {
      buffer.push_back(first);
      if (at) {
        out.head_arrived = *at;
        out.head_arrived_known = true;
      }
    }
  }
  if (!ec) head_len = co_await asio::async_read_until(s, asio::dynamic_buffer(buffer), "\r\n\r\n", token);
  if (!ec) {
    out.head_at = Clock::now();
    std::string_view head(buffer.data(), head_len);
    if (head.starts_with("HTTP/1.1 ")) out.status = std::atoi(std::string(head.substr(9, 3)).c_str());
    out.x_cache = header_of(head, "\r\nX-Cache: ");
    std::size_t length = std::strtoull(std::string(header_of(head, "\r\nContent-Length: ")).c_str(), nullptr, 10);
    std::size_t have = buffer.size() - head_len;
    bool same = length == expected.size() && have <= length &&
                std::string_view(buffer).substr(head_len) == std::string_view(expected).substr(0, have);
    std::vector<char> piece(64 * 1024);
    for (std::size_t reads = 0; !ec && have < length && reads < 1000000; ++reads) {
      std::optional<std::chrono::system_clock::time_point> at;
      ssize_t n = recv_stamped(s.native_handle(), piece.data(), std::min(piece.size(), length - have), at);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        co_await s.async_wait(tcp::socket::wait_read, token);
        continue;
      }
      if (n <= 0) {
        ec = n == 0 ? boost::system::error_code(asio::error::eof)
                    : boost::system::error_code(errno, boost::system::system_category());
        break;
      }
      auto got = static_cast<std::size_t>(n);
      same = same && std::string_view(piece.data(), got) == std::string_view(expected).substr(have, got);
      have += got;
      if (have == length && at) {
        out.body_arrived = *at;  // the segment that completed the body
        out.body_arrived_known = true;
      }
    }
    out.body_bytes = have;
    out.body_matches = same && have == length;
  }
  if (ec) out.error = ec.message();
  out.done = true;
  boost::system::error_code ignored;
  s.close(ignored);
  crowd.finish_one();
}

void launch(net::IoPool& clients, Crowd& crowd, net::Endpoint at, const std::string& target,
            const std::string& expected) {
  tcp::endpoint ep(asio::ip::make_address(at.host), at.port);
  crowd.clients = clients.next().get_executor();
  crowd.hold.emplace(crowd.clients, asio::steady_timer::time_point::max());
  for (auto& r : crowd.replies) asio::co_spawn(clients.next(), raw_get(ep, target, expected, r, crowd), asio::detached);
}

struct Delays {
  double p50 = 0, p99 = 0, max = 0;
};

Delays summarize(std::vector<double> ms) {
  if (ms.empty()) return {};
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(q * ms.size()))]; };
  return {at(0.50), at(0.99), ms.back()};
}

// The steady clock's `t` on the realtime clock (kernel receive timestamps are realtime).
std::chrono::system_clock::time_point on_system_clock(Clock::time_point t) {
  auto sys_now = std::chrono::system_clock::now();
  auto now = Clock::now();
  return sys_now - std::chrono::duration_cast<std::chrono::system_clock::duration>(now - t);
}

// Milliseconds from `from` to each head's arrival at its client's socket (kernel timestamp); the
// count of replies without a timestamp in `missing`.
Delays arrival_delays(const Crowd& crowd, Clock::time_point from, std::size_t* missing = nullptr) {
  auto start = on_system_clock(from);
  std::vector<double> ms;
  std::size_t none = 0;
  for (auto& r : crowd.replies) {
    if (!(r.done && r.error.empty())) continue;
    if (!r.head_arrived_known) {
      ++none;
      continue;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(r.head_arrived - start).count());
  }
  if (missing) *missing = none;
  return summarize(std::move(ms));
}

// Milliseconds from `answered` to each head's arrival.
Delays head_delays(const Crowd& crowd, Clock::time_point answered) {
  std::vector<double> ms;
  for (auto& r : crowd.replies)
    if (r.done && r.error.empty())
      ms.push_back(std::chrono::duration<double, std::milli>(r.head_at - answered).count());
  if (ms.empty()) return {};
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(q * ms.size()))]; };
  return {at(0.50), at(0.99), ms.back()};
}

constexpr std::size_t kViewers = 1000;
// The most the first and the last of kViewers complete bodies may lie apart (see the fairness test):
// measured 58-105 ms in 8 runs here (load average 2.5-4), five times that for a busier machine,
// where the one client thread reading 200 MB has been seen to need up to 270 ms.
constexpr double kFairSpreadMs = 500;

// A thread's account kept by the scheduler (/proc/self/task/<tid>/schedstat): time on a CPU, and
// time runnable but waiting for one.
struct SchedStat {
  std::uint64_t run_ns = 0;
  std::uint64_t wait_ns = 0;
};

std::vector<SchedStat> sched_stats(const std::vector<pid_t>& tids) {
  std::vector<SchedStat> out;
  for (auto tid : tids) {
    std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/schedstat");
    SchedStat st;
    f >> st.run_ns >> st.wait_ns;
    out.push_back(st);
  }
  return out;
}

// The thread ids of a pool's I/O threads (each context is run by one thread).
std::vector<pid_t> thread_ids(net::IoPool& pool) {
  std::vector<pid_t> out;
  for (auto* ctx : pool.contexts()) {
    std::promise<pid_t> tid;
    asio::post(*ctx, [&] { tid.set_value(::gettid()); });
    out.push_back(tid.get_future().get());
  }
  return out;
}

// When the edge handed each response to the server (the access hook runs just before that).
struct HandOffTimes final : AccessLog {
  void on_access(const AccessEvent&) override {
    std::lock_guard lock(mu);
    at.push_back(Clock::now());
  }
  std::mutex mu;
  std::vector<Clock::time_point> at;
};

// 1,000 viewers ask an edge for a part its upstream does not have yet; the upstream answers
// ~300 ms after the edge asked, once every viewer is waiting at the edge.
struct CoalescingRun {
  int upstream_requests = 0;
  int complete = 0;  // 200 with every byte right
  std::string first_problem;
  std::map<std::string, int> by_cache;  // X-Cache values
  Delays heads;                         // response head read by the client after the upstream answer
  Delays arrivals;                      // response head at the client's socket after the upstream answer
  std::size_t unstamped = 0;            // replies without a receive timestamp
  double handed_off_ms = 0;             // the edge's last response handed to the server, after it
  double first_hand_off_ms = 0;         // the edge's first response handed to the server, after it
  // From the upstream answer until every head had arrived, the most any one of the edge's I/O
  // threads spent on a CPU, and waiting for one (runnable, with the CPUs taken by others).
  double edge_cpu_ms = 0;
  double edge_wait_ms = 0;
  // Complete bodies at the viewers' sockets after the upstream answer: the first and the last.
  double first_body_ms = 0;
  double last_body_ms = 0;
  std::size_t bodies_stamped = 0;
};

CoalescingRun coalesce_thousand(const std::string& body) {
  CoalescingRun run;
  Upstream upstream;
  Config config;
  config.upstream_timeout = 20s;  // the test decides when the upstream answers
  auto hand_offs = std::make_shared<HandOffTimes>();
  EdgeUnderTest edge({upstream.address()}, config, hand_offs);
  net::IoPool clients(1);
  clients.start();
  Crowd crowd(kViewers);
  launch(clients, crowd, edge.endpoint(), kPart, body);

  bool all_waiting = eventually(
      [&] {
        auto first = upstream.first();
        return first && Clock::now() - *first >= 300ms &&
               edge.metric("streamflex_edge_waiting_requests") == static_cast<double>(kViewers);
      },
      15s);
  EXPECT_TRUE(all_waiting) << "sent " << crowd.sent << ", waiting at the edge "
                           << edge.metric("streamflex_edge_waiting_requests") << ", upstream requests "
                           << upstream.total();
  EXPECT_TRUE(eventually([&] { return upstream.held_count() == 1; }, 5s));
  auto edge_threads = thread_ids(edge.pool);
  auto before = sched_stats(edge_threads);
  auto answered = upstream.answer_held(object_response(Bytes::copy_of(as_bytes(body)), kImmutable));
  EXPECT_TRUE(crowd.wait_heads(10s)) << "not every viewer had the start of an answer 10 s after the upstream's";
  auto after = sched_stats(edge_threads);
  crowd.release();
  for (std::size_t i = 0; i < edge_threads.size(); ++i) {
    run.edge_cpu_ms = std::max(run.edge_cpu_ms, (after[i].run_ns - before[i].run_ns) / 1e6);
    run.edge_wait_ms = std::max(run.edge_wait_ms, (after[i].wait_ns - before[i].wait_ns) / 1e6);
  }
  if (!crowd.wait_all(30s)) {
    ADD_FAILURE() << "not every viewer got an answer in 30 s";
    clients.stop();
  }
  clients.join();

  run.upstream_requests = upstream.count(kPart);
  for (auto& r : crowd.replies) {
    ++run.by_cache[r.x_cache];
    if (r.status == 200 && r.body_matches)
      ++run.complete;
    else if (run.first_problem.empty())
      run.first_problem = r.error + " status " + std::to_string(r.status);
  }
  run.heads = head_delays(crowd, answered);
  {
    auto start = on_system_clock(answered);
    std::vector<double> ms;
    for (auto& r : crowd.replies)
      if (r.body_arrived_known && r.body_matches)
        ms.push_back(std::chrono::duration<double, std::milli>(r.body_arrived - start).count());
    run.bodies_stamped = ms.size();
    if (!ms.empty()) {
      auto [lo, hi] = std::minmax_element(ms.begin(), ms.end());
      run.first_body_ms = *lo;
      run.last_body_ms = *hi;
    }
  }
  run.arrivals = arrival_delays(crowd, answered, &run.unstamped);
  std::lock_guard lock(hand_offs->mu);
  if (!hand_offs->at.empty()) {
    auto [first, last] = std::minmax_element(hand_offs->at.begin(), hand_offs->at.end());
    run.handed_off_ms = std::chrono::duration<double, std::milli>(*last - answered).count();
    run.first_hand_off_ms = std::chrono::duration<double, std::milli>(*first - answered).count();
  }
  return run;
}

TEST(Edge, ThousandRequestsForAMissingPartMakeOneUpstreamRequestAndAllGetTheWholePart) {
  raise_open_files();
  auto run = coalesce_thousand(part_body());
  EXPECT_EQ(run.upstream_requests, 1);
  EXPECT_EQ(run.complete, static_cast<int>(kViewers)) << "first problem: " << run.first_problem;
  EXPECT_EQ(run.by_cache["MISS"], 1);
  EXPECT_EQ(run.by_cache["COALESCED"], static_cast<int>(kViewers) - 1);
}

// Every waiter has its response head within 20 ms of the upstream answer, measured where it is
// decided and not by when the test's own client gets round to looking:
// - "has its head" is the moment the head reached the viewer's socket: the kernel's receive
//   timestamp of its first byte (SO_TIMESTAMPNS). The clients read nothing more until every head
//   has arrived, so the test's 1,000 clients (one thread, 200 MB of bodies to read and compare)
//   take no CPU from the server while the heads fan out.
// - The machine is shared (2 cores, other builds and tests): a server thread may wait for a CPU
//   that others hold. The scheduler's own account of the edge's I/O threads (schedstat) says how
//   long: the server's own work, the most any edge thread ran from the upstream answer until every
//   head had arrived (which also counts some body writing after its last head, so it only errs
//   high), must be within 20 ms; and the last head must arrive within 20 ms plus the most any edge
//   thread waited for a CPU, plus 20 ms for time the scheduler's account cannot attribute (a
//   thread blocked in the kernel: once in five runs here the last head came 15 ms after the edge
//   threads' run and wait time), so a server that sleeps while heads are due (a lock re-checked on
//   a timer, as nginx's 500 ms proxy_cache_lock) fails, whatever the machine's load.
// Before, the test compared the time the client thread read each head with a separately measured
// fan-out from a plain server, and failed 1 run in 3 here: the client's read times were 95-216 ms
// and the plain server's 53-153 ms, both set by the one client thread reading 200 MB of bodies and by
// the machine's load in that moment; with the clients held back the heads reached the sockets
// within 15-31 ms, and the edge had handed off every answer after 1.1 ms.
// Timed: CTest runs it alone as unit.edge.coalescing (RUN_SERIAL); inside unit.edge it is skipped.
TEST(Edge, ThousandCoalescedViewersAreAnsweredWithin20msOfTheUpstreamAnswer) {
  if (!std::getenv("SF_SERIAL_TIMING")) GTEST_SKIP() << "timed test: runs alone as unit.edge.coalescing";
  raise_open_files();
  auto run = coalesce_thousand(part_body());
  auto& a = run.arrivals;
  std::printf(
      "[ coalescing ] %zu viewers, 200 KB part: response head at the viewer's socket after the upstream answer "
      "p50 %.1f ms, p99 %.1f ms, max %.1f ms; edge handed its first/last response to the server after %.2f/%.1f "
      "ms; edge I/O threads until the last head: at most %.1f ms on a CPU, %.1f ms waiting for one; heads read "
      "by the test's client p50 %.1f ms, max %.1f ms\n",
      kViewers, a.p50, a.p99, a.max, run.first_hand_off_ms, run.handed_off_ms, run.edge_cpu_ms, run.edge_wait_ms,
      run.heads.p50, run.heads.max);
  EXPECT_EQ(run.unstamped, 0u) << "heads without a receive timestamp";
  EXPECT_LE(run.handed_off_ms, 20.0);
  EXPECT_LE(run.edge_cpu_ms, 20.0) << "the edge's own work to answer every waiter";
  EXPECT_LE(a.max, 20.0 + run.edge_wait_ms + 20.0) << "p50 " << a.p50 << " ms, p99 " << a.p99 << " ms";
}

// Fairness: 1,000 coalesced waiters share one ~200 KB part (a 0.5 s part at 3 Mbit/s), and none
// is starved by the others: the spread between the first and the last complete body at the
// viewers' sockets (kernel receive timestamps of the segment that completed each body) is bounded.
// The clients, one thread for all 1,000, read nothing until every head has arrived and then read
// as fast as they can, so the spread is mostly the time one client thread needs to take in 200 MB;
// a waiter held back until the others had finished, or one whose body stalled, would stand out by
// far more than that.
TEST(Edge, ThousandCoalescedViewersAllGetTheWholePartWithinABoundedSpread) {
  if (!std::getenv("SF_SERIAL_TIMING")) GTEST_SKIP() << "timed test: runs alone as unit.edge.coalescing";
  raise_open_files();
  auto run = coalesce_thousand(part_body());
  std::printf(
      "[ fairness ] %zu viewers, 200 KB part: complete bodies at the viewers' sockets %.1f .. %.1f ms after the "
      "upstream answer: spread %.1f ms (%zu timestamped)\n",
      kViewers, run.first_body_ms, run.last_body_ms, run.last_body_ms - run.first_body_ms, run.bodies_stamped);
  EXPECT_EQ(run.complete, static_cast<int>(kViewers)) << "first problem: " << run.first_problem;
  EXPECT_EQ(run.bodies_stamped, kViewers);
  EXPECT_LE(run.last_body_ms - run.first_body_ms, kFairSpreadMs);
}

TEST(Edge, RepeatRequestIsAHitWithoutAnUpstreamRequest) {
  Upstream upstream;
  upstream.add(kPart, part_body(), kImmutable);
  EdgeUnderTest edge({upstream.address()});
  auto first = get(edge.endpoint(), kPart);
  auto second = get(edge.endpoint(), kPart);
  EXPECT_EQ(first.header("x-cache"), "MISS");
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.header("x-cache"), "HIT");
  EXPECT_EQ(second.header("cache-control"), kImmutable);
  EXPECT_EQ(as_chars(second.body.view()), part_body());
  EXPECT_EQ(upstream.count(kPart), 1);
}

// A blocking reload's answer announces a part every viewer will ask for at once: the edge fetches
// it right away (once), and serves it from its cache, whole and by range (a large object: from a
// file with sendfile).
TEST(Edge, BlockingReloadAnswerPrefetchesItsNewestPartOnce) {
  const std::string playlist = "/live/s/video/index.m3u8";
  const std::string text =
      "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:5\n"
      "#EXT-X-PART:DURATION=0.5,URI=\"s5.p1.m4s\",INDEPENDENT=YES\n"
      "#EXT-X-PART:DURATION=0.5,URI=\"s5.p2.m4s\"\n"
      "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s5.p3.m4s\"\n";
  Upstream upstream;
  upstream.add(playlist, text, "max-age=1", "application/vnd.apple.mpegurl");
  upstream.add(kPart, part_body(), kImmutable);
  EdgeUnderTest edge({upstream.address()});
  auto answer = get(edge.endpoint(), playlist + "?_HLS_msn=5&_HLS_part=2");
  EXPECT_EQ(answer.status, 200);
  EXPECT_TRUE(eventually([&] { return upstream.count(kPart) == 1; }, 5s)) << "the newest part was not prefetched";
  EXPECT_EQ(upstream.count("/live/s/video/s5.p1.m4s"), 0);  // only the newest part
  EXPECT_EQ(upstream.count("/live/s/video/s5.p3.m4s"), 0);  // a hint is not published yet
  EXPECT_EQ(edge.metric("streamflex_edge_prefetches_total"), 1);
  auto part = get(edge.endpoint(), kPart);
  EXPECT_EQ(part.status, 200);
  EXPECT_EQ(as_chars(part.body.view()), part_body());
  auto range = get(edge.endpoint(), kPart, {{"Range", "bytes=1000-1999"}});
  EXPECT_EQ(range.status, 206);
  EXPECT_EQ(range.header("x-cache"), "HIT");
  EXPECT_EQ(as_chars(range.body.view()), part_body().substr(1000, 1000));
  // Another answer naming the same newest part (a cached one here) fetches nothing again.
  get(edge.endpoint(), playlist + "?_HLS_msn=5&_HLS_part=3");
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(upstream.count(kPart), 1);
  EXPECT_EQ(edge.metric("streamflex_edge_prefetches_total"), 1);
}

TEST(Edge, PlaylistWithMaxAgeOneIsFetchedAgainAfterOneSecond) {
  const std::string playlist = "/live/s/video/index.m3u8";
  Upstream upstream;
  upstream.add(playlist, "#EXTM3U\n", "max-age=1");
  EdgeUnderTest edge({upstream.address()});
  auto t0 = Clock::now();
  EXPECT_EQ(get(edge.endpoint(), playlist).header("x-cache"), "MISS");
  Clock::duration refetched{};
  bool again = eventually(
      [&] {
        bool miss = get(edge.endpoint(), playlist).header("x-cache") == "MISS";
        refetched = Clock::now() - t0;
        return miss;
      },
      3s, 20ms);
  ASSERT_TRUE(again) << "still cached after 3 s";
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(refetched).count();
  EXPECT_GE(ms, 1000);
  EXPECT_LE(ms, 1500);
  EXPECT_EQ(upstream.count(playlist), 2);
}

TEST(Edge, RequestThatCameThroughThisEdgeIsRefusedAsALoop) {
  Upstream upstream;
  upstream.add(kPart, part_body(), kImmutable);
  EdgeUnderTest edge({upstream.address()});
  auto r = get(edge.endpoint(), kPart, {{"Via", "1.1 shield-eu, 1.1 edge-under-test"}});
  EXPECT_EQ(r.status, 508);
  EXPECT_EQ(upstream.total(), 0);
}

TEST(Edge, FailsOverWhenTheFirstUpstreamRefusesConnectionsAndMarksItDown) {
  Upstream first, second;
  second.add(kPart, part_body(), kImmutable);
  second.add("/live/s/video/s6.p0.m4s", part_body(1000), kImmutable);
  Config config;
  config.health_interval = 600s;  // only the probe at start: the request finds the port closed
  EdgeUnderTest edge({first.address(), second.address()}, config);
  ASSERT_TRUE(eventually([&] { return first.probes.load() >= 1; }, 5s)) << "the first upstream was never probed";
  const std::string first_name = first.address();
  std::uint16_t closed_port = first.server.port();
  first.stop();
  ASSERT_TRUE(eventually(
      [&] {
        asio::io_context ctx;
        tcp::socket s(ctx);
        boost::system::error_code ec;
        s.connect({asio::ip::make_address("127.0.0.1"), closed_port}, ec);
        return static_cast<bool>(ec);
      },
      5s))
      << "the first upstream's port still accepts";

  auto r = get(edge.endpoint(), kPart);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), kPartBytes);
  auto failed = [&] {
    return edge.metric("streamflex_edge_upstream_requests_total",
                       {"upstream=\"" + first_name + "\"", "result=\"failed\""});
  };
  // Either the request met the closed port and failed over (failed == 1), or the start-up probe's
  // answer was cut off by the stop and the edge already had the first upstream down (failed == 0);
  // the viewer gets the part either way.
  auto failures = failed();
  EXPECT_LE(failures, 1);
  // Marked down: the next object goes to the second upstream without trying the first again.
  EXPECT_EQ(get(edge.endpoint(), "/live/s/video/s6.p0.m4s").status, 200);
  EXPECT_EQ(failed(), failures);
  EXPECT_EQ(second.total(), 2);
}

// ---- an upstream that breaks off mid-body ----------------------------------------------------

// A TCP socket listening on 127.0.0.1 on a free port (returned in `port`).
int listen_on_loopback(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("cannot listen on 127.0.0.1");
  port = ntohs(a.sin_port);
  return fd;
}

// A raw upstream on its own thread: /healthz is answered 200; any other GET gets a head with the
// whole body's Content-Length, the first `sent` bytes, then (after `pause`, time for the edge to
// hand the head and those bytes to its viewers) a reset, or nothing more at all (`stall`).
struct BreakingUpstream {
  BreakingUpstream(std::string body, std::size_t sent, bool stall, bool chunked = false)
      : body(std::move(body)), sent(sent), stall(stall), chunked(chunked) {
    listener = listen_on_loopback(port);
    thread = std::thread([this] { serve(); });
  }
  ~BreakingUpstream() {
    ::shutdown(listener, SHUT_RDWR);
    thread.join();
    ::close(listener);
    for (int fd : stalled) ::close(fd);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }

  void serve() {
    for (;;) {
      int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      timeval tv{5, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        head.append(buf, static_cast<std::size_t>(n));
      }
      if (head.starts_with("GET /healthz")) {
        std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
        ::send(fd, ok.data(), ok.size(), MSG_NOSIGNAL);
        ::close(fd);
        continue;
      }
      if (!head.starts_with("GET ")) {
        ::close(fd);
        continue;
      }
      ++requests;
      std::string out;
      if (chunked) {
        out = fmt::format(
            "HTTP/1.1 200 OK\r\nContent-Type: video/iso.segment\r\nCache-Control: {}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            kImmutable, sent);
        out.append(body, 0, sent).append("\r\n");
      } else {
        out = fmt::format(
            "HTTP/1.1 200 OK\r\nContent-Type: video/iso.segment\r\nCache-Control: {}\r\nContent-Length: {}\r\n\r\n",
            kImmutable, body.size());
        out.append(body, 0, sent);
      }
      ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
      if (stall) {
        stalled.push_back(fd);  // open, silent, until the test ends
        continue;
      }
      std::this_thread::sleep_for(pause);
      linger l{1, 0};  // close with a reset
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
      ::close(fd);
    }
  }

  std::string body;
  std::size_t sent;
  bool stall;
  bool chunked = false;  // a chunked answer (unknown length): one chunk of `sent` bytes, then the break
  std::chrono::milliseconds pause{100};
  int listener = -1;
  std::uint16_t port = 0;
  std::atomic<int> requests{0};
  std::vector<int> stalled;  // the serving thread's only
  std::thread thread;
};

// A viewer reading through the edge: what arrived before the answer ended or broke off.
struct Partial {
  int status = 0;
  std::string body;
  bool complete = false;
  std::string x_cache;
};

// One GET through `at` with a raw socket, read until the Content-Length is complete or the
// connection ends.
Partial get_raw(net::Endpoint at, const std::string& target) {
  Partial p;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(at.port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return p;
  }
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: edge\r\n\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string in;
  char buf[65536];
  std::size_t head_end = std::string::npos, length = 0;
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    in.append(buf, static_cast<std::size_t>(n));
    if (head_end == std::string::npos && (head_end = in.find("\r\n\r\n")) != std::string::npos) {
      std::string_view head(in.data(), head_end);
      p.status = std::atoi(in.c_str() + 9);
      length = std::strtoull(std::string(header_of(head, "Content-Length: ")).c_str(), nullptr, 10);
      p.x_cache = header_of(head, "X-Cache: ");
      head_end += 4;
    }
    if (head_end != std::string::npos && in.size() - head_end >= length) break;
  }
  ::close(fd);
  if (head_end != std::string::npos) {
    p.body = in.substr(head_end);
    p.complete = p.body.size() == length;
  }
  return p;
}

constexpr std::size_t kSentBeforeBreak = 64 * 1024;

TEST(EdgeResume, BodyBrokenOffByTheFirstUpstreamIsFinishedFromTheNextWithTheSameBytes) {
  const auto body = part_body();
  BreakingUpstream first(body, kSentBeforeBreak, false);
  Upstream second;
  second.add(kPart, body, kImmutable);
  EdgeUnderTest edge({first.address(), second.address()});
  auto r = get_raw(edge.endpoint(), kPart);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.x_cache, "MISS");
  EXPECT_TRUE(r.complete) << r.body.size() << " of " << body.size() << " bytes";
  EXPECT_TRUE(r.body == body) << "the viewer's body differs from the object";
  EXPECT_EQ(first.requests.load(), 1);
  EXPECT_EQ(second.count(kPart), 1);
  EXPECT_EQ(edge.metric("streamflex_edge_upstream_resumes_total", {"result=\"resumed\""}), 1);
  // The finished object is cached whole: the next viewer's is a hit with every byte.
  auto again = get_raw(edge.endpoint(), kPart);
  EXPECT_EQ(again.x_cache, "HIT");
  EXPECT_TRUE(again.body == body);
  EXPECT_EQ(second.count(kPart), 1);
}

TEST(EdgeResume, BodyThatStallsPastTheDeadlineIsFinishedFromTheNext) {
  const auto body = part_body();
  BreakingUpstream first(body, kSentBeforeBreak, true);
  Upstream second;
  second.add(kPart, body, kImmutable);
  Config config;
  config.upstream_timeout = 400ms;
  EdgeUnderTest edge({first.address(), second.address()}, config);
  auto t0 = Clock::now();
  auto r = get_raw(edge.endpoint(), kPart);
  auto took = Clock::now() - t0;
  EXPECT_TRUE(r.complete) << r.body.size() << " of " << body.size() << " bytes";
  EXPECT_TRUE(r.body == body);
  EXPECT_GE(took, 300ms) << "finished before the stall deadline: was the first upstream used?";
  EXPECT_LT(took, 3s);
  EXPECT_EQ(edge.metric("streamflex_edge_upstream_resumes_total", {"result=\"resumed\""}), 1);
}

TEST(EdgeResume, NextUpstreamWithOtherBytesIsNotSplicedInAndTheViewerGetsAShortBody) {
  const auto body = part_body();
  BreakingUpstream first(body, kSentBeforeBreak, false);
  Upstream second;
  auto other = body;
  other[10] = static_cast<char>(other[10] ^ 1);  // one bit in what the viewer already has
  second.add(kPart, other, kImmutable);
  EdgeUnderTest edge({first.address(), second.address()});
  auto r = get_raw(edge.endpoint(), kPart);
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.complete);
  EXPECT_GE(r.body.size(), kSentBeforeBreak) << "the bytes sent before the break reach the viewer";
  EXPECT_LT(r.body.size(), body.size());
  EXPECT_EQ(r.body, body.substr(0, r.body.size())) << "only the first upstream's bytes";
  EXPECT_EQ(edge.metric("streamflex_edge_upstream_resumes_total", {"result=\"differed\""}), 1);
  EXPECT_EQ(edge.metric("streamflex_edge_upstream_resumes_total", {"result=\"resumed\""}), 0);
  // The broken object is not cached: the next viewer's request goes upstream again.
  auto again = get_raw(edge.endpoint(), kPart);
  EXPECT_NE(again.x_cache, "HIT");
}

TEST(EdgeResume, NextUpstreamWithADifferentLengthIsNotSplicedIn) {
  const auto body = part_body();
  BreakingUpstream first(body, kSentBeforeBreak, false);
  Upstream second;
  second.add(kPart, body.substr(0, body.size() - 1), kImmutable);
  EdgeUnderTest edge({first.address(), second.address()});
  auto r = get_raw(edge.endpoint(), kPart);
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.body, body.substr(0, r.body.size()));
  EXPECT_EQ(edge.metric("streamflex_edge_upstream_resumes_total", {"result=\"differed\""}), 1);
}

// An upstream that hangs: its kernel completes connections (a listening socket never accepted
// from) and takes requests; nothing ever answers, the health probe's included.
struct HungUpstream {
  HungUpstream() { fd = listen_on_loopback(port); }
  ~HungUpstream() { ::close(fd); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
  int fd = -1;
  std::uint16_t port = 0;
};

TEST(Edge, RequestHeldByAHungUpstreamIsRetriedOnTheNextOnceTheProbeFails) {
  HungUpstream hung;
  Upstream second;
  second.add(kPart, part_body(), kImmutable);
  Config config;
  config.upstream_timeout = 10s;  // the request's own deadline: far beyond the probe's
  config.health_timeout = 1s;
  config.health_interval = 600s;
  EdgeUnderTest edge({hung.address(), second.address()}, config);
  auto t0 = Clock::now();
  auto r = get(edge.endpoint(), kPart);  // sent at once: the hung upstream is still thought up
  auto took = Clock::now() - t0;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), kPartBytes);
  EXPECT_EQ(second.count(kPart), 1);
  // Not before the probe's deadline (nothing else could tell the upstream hangs), and not at the
  // request's own deadline.
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 4s) << "the request waited for its own deadline, not the probe";
  EXPECT_EQ(edge.metric("streamflex_edge_upstream_requests_total",
                        {"upstream=\"" + hung.address() + "\"", "result=\"failed\""}),
            1);
}

// With nowhere else to go, a failed probe does not cut the requests waiting on the only upstream
// short: a brief hang would otherwise turn every waiting viewer's request into an error.
TEST(Edge, FailedProbeLeavesTheRequestsToTheOnlyUpstreamWaiting) {
  HungUpstream hung;
  Config config;
  config.upstream_timeout = 1500ms;
  config.health_timeout = 100ms;
  config.health_interval = 600s;
  EdgeUnderTest edge({hung.address()}, config);
  auto t0 = Clock::now();
  auto r = get(edge.endpoint(), kPart);
  auto took = Clock::now() - t0;
  EXPECT_EQ(r.status, 502);
  EXPECT_GE(took, 1400ms) << "cut at the probe's failure, not at the request's own deadline";
}

// A blocking reload the first upstream answers 503 (its hold ran out: no new part of that stream
// there) is tried on the next one, and the first stays up for everything else.
TEST(Edge, BlockingReloadThatRanOutOfHoldMovesOnWithoutMarkingTheUpstreamDown) {
  Upstream first, second;
  const std::string playlist = "/live/s/video/index.m3u8";
  second.add(playlist, "#EXTM3U\n", "max-age=1", "application/vnd.apple.mpegurl");
  first.add(kPart, part_body(1000), kImmutable);
  second.add(kPart, part_body(1000), kImmutable);
  Config config;
  config.health_interval = 600s;
  EdgeUnderTest edge({first.address(), second.address()}, config);
  auto reload =
      std::async(std::launch::async, [&] { return get(edge.endpoint(), playlist + "?_HLS_msn=7&_HLS_part=1"); });
  ASSERT_TRUE(eventually([&] { return first.held_count() == 1; }, 5s)) << "the reload never reached the first upstream";
  first.answer_held(http::Response::text(503, "late\n"));
  auto r = reload.get();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(second.count(playlist), 1);
  // Still up: another stream's object is asked of the first upstream. This stream's stay with
  // the second, which has them.
  const std::string other = "/live/t/video/s5.p2.m4s";
  first.add(other, part_body(1000), kImmutable);
  EXPECT_EQ(get(edge.endpoint(), other).status, 200);
  EXPECT_EQ(first.count(other), 1);
  EXPECT_EQ(get(edge.endpoint(), kPart).status, 200);
  EXPECT_EQ(first.count(kPart), 0);
  EXPECT_EQ(second.count(kPart), 1);
}

// An origin that is up but lost one stream's ingest holds that stream's blocking reloads (the
// part never comes there). Once one is late by edge.hedge_parts part targets, the next upstream
// is asked too; its answer serves, and the stream's later requests go there first.
TEST(Edge, LateBlockingReloadIsAlsoAskedOfTheNextUpstreamAndTheStreamStaysThere) {
  Upstream first, second;
  const std::string playlist = "/live/s/video/index.m3u8";
  second.add(playlist, "#EXTM3U\n#EXT-X-PART-INF:PART-TARGET=0.25\n", "max-age=1", "application/vnd.apple.mpegurl");
  first.add(kPart, part_body(1000), kImmutable);
  second.add(kPart, part_body(1000), kImmutable);
  const std::string other = "/live/t/video/s5.p2.m4s";
  first.add(other, part_body(1000), kImmutable);
  Config config;
  config.health_interval = 600s;
  config.hedge_parts = 1;
  EdgeUnderTest edge({first.address(), second.address()}, config);
  auto t0 = Clock::now();
  auto r = get(edge.endpoint(), playlist + "?_HLS_msn=7&_HLS_part=1");
  auto took = Clock::now() - t0;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(first.held_count(), 1u) << "the late request to the first upstream was not sent, or not left to end";
  EXPECT_EQ(second.count(playlist), 1);
  // One part target (1 s while the stream's is not known), not the first upstream's 30 s hold.
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 5s);
  EXPECT_EQ(edge.metric("streamflex_edge_hedged_requests_total", {"served_by=\"next\""}), 1);
  // The stream stays with the second upstream; the first, not marked down, keeps the others.
  EXPECT_EQ(get(edge.endpoint(), kPart).status, 200);
  EXPECT_EQ(second.count(kPart), 1);
  EXPECT_EQ(first.count(kPart), 0);
  EXPECT_EQ(get(edge.endpoint(), other).status, 200);
  EXPECT_EQ(first.count(other), 1);
  // The next late reload of the stream is asked of the second first, then of the first after
  // the stream's own part target (0.25 s, learned from its playlist), not 1 s.
  second.remove(playlist);
  t0 = Clock::now();
  auto later =
      std::async(std::launch::async, [&] { return get(edge.endpoint(), playlist + "?_HLS_msn=8&_HLS_part=0"); });
  ASSERT_TRUE(eventually([&] { return first.held_count() == 2; }, 5s)) << "the first upstream was never asked";
  took = Clock::now() - t0;
  EXPECT_EQ(second.held_count(), 1u) << "the second upstream was not asked first";
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 800ms);
  second.answer_held(object_response(Bytes::copy_of(as_bytes(std::string_view("#EXTM3U\n"))), "max-age=1"));
  EXPECT_EQ(later.get().status, 200);
  EXPECT_EQ(edge.metric("streamflex_edge_hedged_requests_total", {"served_by=\"first\""}), 1);
  // The late requests end as the origin's hold would end them; the first stays up.
  first.answer_held(http::Response::text(503, "late\n"));
  EXPECT_TRUE(eventually(
      [&] {
        return edge.metric("streamflex_edge_upstream_requests_total",
                           {"upstream=\"" + first.address() + "\"", "result=\"5xx\""}) == 2;
      },
      5s));
  EXPECT_EQ(edge.metric("streamflex_edge_upstream_requests_total", {"result=\"failed\""}), -1);
}

// An origin whose source for the stream left answers its blocking reloads at once, with the
// playlist that no longer grows, marked X-SF-Source: away. The next upstream is asked at once, and
// its answer serves; where every upstream says away, the first's answer does.
TEST(Edge, PlaylistAnsweredWhileTheSourceIsAwayIsAskedOfTheNextUpstreamAtOnce) {
  Upstream first, second;
  const std::string playlist = "/live/s/video/index.m3u8";
  first.away = true;
  first.add(playlist, "#EXTM3U\n#A\n", "max-age=1", "application/vnd.apple.mpegurl");
  second.add(playlist, "#EXTM3U\n#B\n", "max-age=1", "application/vnd.apple.mpegurl");
  first.add(kPart, part_body(1000), kImmutable);
  second.add(kPart, part_body(1000), kImmutable);
  Config config;
  config.health_interval = 600s;
  config.hedge_parts = 10;  // 10 s: the next is asked for the answer, not for lateness
  EdgeUnderTest edge({first.address(), second.address()}, config);
  auto t0 = Clock::now();
  auto r = get(edge.endpoint(), playlist + "?_HLS_msn=7&_HLS_part=1");
  EXPECT_LT(Clock::now() - t0, 2s);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(std::string(as_chars(r.body.view())), "#EXTM3U\n#B\n");
  EXPECT_EQ(first.count(playlist), 1);
  EXPECT_EQ(second.count(playlist), 1);
  // The stream's objects come from the second now; the plain playlist too.
  EXPECT_EQ(get(edge.endpoint(), kPart).status, 200);
  EXPECT_EQ(second.count(kPart), 1);
  EXPECT_EQ(first.count(kPart), 0);
  second.away = true;  // both away: the first in order (now the second) answers
  auto both = get(edge.endpoint(), playlist + "?_HLS_msn=7&_HLS_part=2");
  EXPECT_EQ(both.status, 200);
  EXPECT_EQ(std::string(as_chars(both.body.view())), "#EXTM3U\n#B\n");
  EXPECT_EQ(first.count(playlist), 2);
}

// A blocking reload the upstream answers in time is asked of no other.
TEST(Edge, BlockingReloadAnsweredInTimeIsNotAskedOfTheNextUpstream) {
  Upstream first, second;
  const std::string playlist = "/live/s/video/index.m3u8";
  Config config;
  config.health_interval = 600s;
  config.hedge_parts = 1;
  EdgeUnderTest edge({first.address(), second.address()}, config);
  auto reload =
      std::async(std::launch::async, [&] { return get(edge.endpoint(), playlist + "?_HLS_msn=7&_HLS_part=1"); });
  ASSERT_TRUE(eventually([&] { return first.held_count() == 1; }, 5s));
  std::this_thread::sleep_for(500ms);
  first.answer_held(object_response(Bytes::copy_of(as_bytes(std::string_view("#EXTM3U\n"))), "max-age=1"));
  EXPECT_EQ(reload.get().status, 200);
  EXPECT_EQ(second.total(), 0);
  EXPECT_EQ(edge.metric("streamflex_edge_hedged_requests_total"), -1);
}

// The origin holds each blocking reload until its part exists; however many are held, a part
// (or segment) the origin has is fetched at once, not after one of them.
TEST(Edge, PartIsFetchedAtOnceWhileBlockingReloadsHeldUpstreamOutnumberItsConnections) {
  Upstream origin;
  origin.add(kPart, part_body(1000), kImmutable);
  Config config;
  config.health_interval = 600s;
  config.upstream_connections = 2;
  EdgeUnderTest edge({origin.address()}, config, nullptr, 1);  // one I/O thread: one pool
  std::vector<std::future<http::ClientResponse>> reloads;
  for (int s = 0; s < 4; ++s)
    reloads.push_back(std::async(std::launch::async, [&, s] {
      return get(edge.endpoint(), fmt::format("/live/s{}/video/index.m3u8?_HLS_msn=7&_HLS_part=1", s));
    }));
  ASSERT_TRUE(eventually([&] { return origin.held_count() == 4; }, 5s))
      << "held " << origin.held_count() << " of 4 blocking reloads: the others wait for a connection";
  auto t0 = Clock::now();
  EXPECT_EQ(get(edge.endpoint(), kPart).status, 200);
  EXPECT_LT(Clock::now() - t0, 1s);
  origin.answer_held(object_response(Bytes::copy_of(as_bytes(std::string_view("#EXTM3U\n"))), "max-age=1"));
  for (auto& r : reloads) EXPECT_EQ(r.get().status, 200);
}

// Where a stream is live on one origin only, the others answer its objects 404: the viewer gets
// the object from the one that has it, and the stream's next requests go there first.
TEST(Edge, NotFoundAtTheFirstUpstreamIsAskedOfTheNextAndTheStreamStaysThere) {
  Upstream first, second;
  first.mark_gone(kPart);
  second.add(kPart, part_body(1000), kImmutable);
  const std::string next = "/live/s/video/s5.p3.m4s";
  first.add(next, part_body(1000), kImmutable);
  second.add(next, part_body(1000), kImmutable);
  Config config;
  config.health_interval = 600s;
  EdgeUnderTest edge({first.address(), second.address()}, config);
  auto r = get(edge.endpoint(), kPart);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 1000u);
  EXPECT_EQ(first.count(kPart), 1);
  EXPECT_EQ(second.count(kPart), 1);
  EXPECT_EQ(get(edge.endpoint(), next).status, 200);
  EXPECT_EQ(first.count(next), 0);
  EXPECT_EQ(second.count(next), 1);
  // Nowhere: the 404 is the answer.
  const std::string missing = "/live/s/video/s1.p0.m4s";
  first.mark_gone(missing);
  second.mark_gone(missing);
  EXPECT_EQ(get(edge.endpoint(), missing).status, 404);
}

TEST(Edge, IfNoneMatchWithTheCurrentETagGets304WithoutABody) {
  Upstream upstream;
  upstream.add(kPart, part_body(), kImmutable);
  EdgeUnderTest edge({upstream.address()});
  // A miss streams the body as it arrives, before its bytes (and so its ETag) are known; the
  // cached object has one.
  get(edge.endpoint(), kPart);
  auto full = get(edge.endpoint(), kPart);
  EXPECT_EQ(full.header("x-cache"), "HIT");
  auto etag = full.header("etag");
  ASSERT_FALSE(etag.empty());
  auto r = get(edge.endpoint(), kPart, {{"If-None-Match", etag}});
  EXPECT_EQ(r.status, 304);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.header("etag"), etag);
}

// ---- unknown-length (chunked) upstream answers ----------------------------------------------

// Viewers on their own I/O thread, each one GET through the edge on its own connection; OnHead
// hands each the body as it arrives (the edge's chunked answer), so the test sees what a viewer
// had before the upstream finished.
struct ChunkedViewers {
  struct One {
    std::shared_ptr<http::ChunkedBody> body;  // what OnHead gave this viewer
    std::optional<Result<http::ClientResponse>> result;
  };

  ChunkedViewers(net::Endpoint at, std::size_t n, std::string target) : viewers(n), pool(1) {
    pool.start();
    for (auto& v : viewers) {
      auto& ctx = pool.next();
      conns.push_back(std::make_unique<http::Connection>(ctx.get_executor(), at));
      http::OnHead on_head = [this, &v](const http::ClientResponse&, const http::ArrivingBody& b) {
        std::lock_guard lock(mu);
        v.body = b.chunked;
      };
      asio::co_spawn(ctx, conns.back()->request("GET", target, {}, 20s, std::move(on_head)),
                     [this, &v](std::exception_ptr, Result<http::ClientResponse> r) {
                       std::lock_guard lock(mu);
                       v.result = std::move(r);
                     });
    }
  }
  ~ChunkedViewers() {
    wait_done(20s);
    std::promise<void> cleared;  // connections are closed on their own thread
    asio::post(pool.next(), [&] {
      conns.clear();
      cleared.set_value();
    });
    cleared.get_future().wait_for(5s);
    pool.stop();
    pool.join();
  }
  // Every viewer has at least `bytes` of its body, streamed (not one that came whole).
  bool all_have(std::size_t bytes) {
    std::lock_guard lock(mu);
    return std::all_of(viewers.begin(), viewers.end(), [&](auto& v) { return v.body && v.body->size() >= bytes; });
  }
  bool wait_done(Clock::duration timeout) {
    return eventually(
        [&] {
          std::lock_guard lock(mu);
          return std::all_of(viewers.begin(), viewers.end(), [](auto& v) { return v.result.has_value(); });
        },
        timeout);
  }

  std::vector<One> viewers;
  net::IoPool pool;
  std::vector<std::unique_ptr<http::Connection>> conns;
  std::mutex mu;
};

constexpr std::size_t kChunkedViewers = 20;

// The origin's open LL-DASH segment comes as a chunked answer that grows while it is produced:
// every waiter gets the edge's answer (chunked) with the first bytes while the upstream is still
// sending, the same body once it ends, and later viewers a cached hit with Content-Length and ETag.
TEST(EdgeChunked, WaitersGetAnUnknownLengthBodyChunkByChunkAndLaterViewersTheCachedObject) {
  Upstream upstream;
  EdgeUnderTest edge({upstream.address()});
  const std::string segment = "/live/s/video/s7.m4s";
  const std::string body = part_body(300 * 1024);
  const std::size_t first = 40 * 1024;
  ChunkedViewers crowd(edge.endpoint(), kChunkedViewers, segment);
  ASSERT_TRUE(eventually([&] { return edge.metric("streamflex_edge_waiting_requests") == kChunkedViewers; }, 10s));
  ASSERT_TRUE(eventually([&] { return upstream.held_count() == 1; }, 5s));
  auto produced = std::make_shared<http::ChunkedBody>();
  http::Response r;
  r.content_type = "video/iso.segment";
  r.source = produced;
  r.headers.emplace_back("Cache-Control", kImmutable);
  upstream.answer_held(r);
  produced->append(Bytes::copy_of(as_bytes(std::string_view(body).substr(0, first))));
  EXPECT_TRUE(eventually([&] { return crowd.all_have(first); }, 10s))
      << "not every viewer had the first chunk while the upstream was still producing";
  EXPECT_FALSE(produced->ended());
  produced->append(Bytes::copy_of(as_bytes(std::string_view(body).substr(first, 100 * 1024))));
  produced->append(Bytes::copy_of(as_bytes(std::string_view(body).substr(first + 100 * 1024))));
  produced->end();
  ASSERT_TRUE(crowd.wait_done(20s));
  std::map<std::string, int> by_cache;
  for (auto& v : crowd.viewers) {
    ASSERT_TRUE(*v.result) << v.result->error().message();
    auto& got = **v.result;
    EXPECT_EQ(got.status, 200);
    EXPECT_EQ(got.header("transfer-encoding"), "chunked");
    EXPECT_EQ(got.header("content-length"), "");
    EXPECT_TRUE(as_chars(got.body.view()) == body) << "a viewer's body differs from the upstream's";
    ++by_cache[got.header("x-cache")];
  }
  EXPECT_EQ(by_cache["MISS"], 1);
  EXPECT_EQ(by_cache["COALESCED"], static_cast<int>(kChunkedViewers) - 1);
  EXPECT_EQ(upstream.count(segment), 1);
  // Sent bytes are counted as the chunks are written (the size was unknown when answered).
  auto sent = [&] {
    return edge.metric("streamflex_edge_sent_bytes_total", {"cache=\"MISS\""}) +
           edge.metric("streamflex_edge_sent_bytes_total", {"cache=\"COALESCED\""});
  };
  EXPECT_TRUE(eventually([&] { return sent() == double(kChunkedViewers * body.size()); }, 5s))
      << sent() << " bytes counted, " << kChunkedViewers * body.size() << " sent";
  // Complete: cached with its length and ETag (from a file, so a Range works too).
  auto hit = get(edge.endpoint(), segment);
  EXPECT_EQ(hit.header("x-cache"), "HIT");
  EXPECT_EQ(hit.header("content-length"), std::to_string(body.size()));
  EXPECT_FALSE(hit.header("etag").empty());
  EXPECT_TRUE(as_chars(hit.body.view()) == body);
  auto range = get(edge.endpoint(), segment, {{"Range", "bytes=100-199"}});
  EXPECT_EQ(range.status, 206);
  EXPECT_EQ(as_chars(range.body.view()), body.substr(100, 100));
  EXPECT_EQ(upstream.count(segment), 1);
}

// A chunked upstream answer that breaks off ends every waiter's answer without the last-chunk
// (their clients see an incomplete body, never a complete-looking short one), is not cached, and
// the next request fetches the object again.
TEST(EdgeChunked, BrokenOffChunkedAnswerEndsEveryWaiterShortAndIsNotCached) {
  Upstream upstream;
  EdgeUnderTest edge({upstream.address()});
  const std::string segment = "/live/s/video/s8.m4s";
  const std::string body = part_body(64 * 1024);
  ChunkedViewers crowd(edge.endpoint(), kChunkedViewers, segment);
  ASSERT_TRUE(eventually([&] { return edge.metric("streamflex_edge_waiting_requests") == kChunkedViewers; }, 10s));
  ASSERT_TRUE(eventually([&] { return upstream.held_count() == 1; }, 5s));
  auto produced = std::make_shared<http::ChunkedBody>();
  http::Response r;
  r.content_type = "video/iso.segment";
  r.source = produced;
  r.headers.emplace_back("Cache-Control", kImmutable);
  upstream.answer_held(r);
  produced->append(Bytes::copy_of(as_bytes(std::string_view(body).substr(0, 16 * 1024))));
  ASSERT_TRUE(eventually([&] { return crowd.all_have(16 * 1024); }, 10s));
  produced->fail();  // the upstream's connection closes without the last-chunk
  ASSERT_TRUE(crowd.wait_done(20s));
  for (auto& v : crowd.viewers) {
    EXPECT_FALSE(*v.result) << "a viewer took a broken-off body for a complete one";
    ASSERT_TRUE(v.body);
    EXPECT_TRUE(v.body->failed());
    EXPECT_FALSE(v.body->ended());
    std::string got;
    for (auto& p : v.body->pieces()) got += as_chars(p.view());
    EXPECT_TRUE(got == body.substr(0, got.size()));
  }
  // Not cached: the next viewer's request goes upstream again and gets the whole object.
  upstream.add(segment, body, kImmutable);
  auto again = get(edge.endpoint(), segment);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.header("x-cache"), "MISS");
  EXPECT_TRUE(as_chars(again.body.view()) == body);
  EXPECT_EQ(upstream.count(segment), 2);
}

// Answers every request the upstream holds with a chunked body the test produces.
std::shared_ptr<http::ChunkedBody> answer_chunked(Upstream& upstream) {
  auto produced = std::make_shared<http::ChunkedBody>();
  http::Response r;
  r.content_type = "video/iso.segment";
  r.source = produced;
  r.headers.emplace_back("Cache-Control", kImmutable);
  upstream.answer_held(r);
  return produced;
}

void append(http::ChunkedBody& body, std::string_view bytes) {
  body.append(Bytes::copy_of(as_bytes(bytes)));
}

// An open segment (chunked) broken off by the first upstream mid-body: the second upstream's
// answer, arriving in other piece boundaries, is checked against what the viewer already has and
// continues its body live.
struct ChunkedResume {
  explicit ChunkedResume(std::string second_body)
      : body(part_body()), first(body, kSentBeforeBreak, false, true), edge({first.address(), second.address()}) {
    viewer = std::async(std::launch::async, [this] {
      asio::io_context ctx;
      http::Connection c(ctx.get_executor(), edge.endpoint());
      return run_on(ctx, c.request("GET", kPart, {}, 10s));
    });
    EXPECT_TRUE(eventually([&] { return second.held_count() == 1; }, 5s)) << "no request reached the second upstream";
    auto produced = answer_chunked(second);
    // Boundaries unlike the first upstream's: inside what the viewer has, across its end, after it.
    append(*produced, std::string_view(second_body).substr(0, 1000));
    append(*produced, std::string_view(second_body).substr(1000, kSentBeforeBreak + 4000));
    append(*produced, std::string_view(second_body).substr(kSentBeforeBreak + 5000, 50000));
    // Live: the continued bytes reach the cached entry (and its viewers) before the answer ends.
    if (second_body == body)
      EXPECT_TRUE(eventually(
          [&] { return edge.metric("streamflex_edge_cache_bytes") >= double(kSentBeforeBreak + 55000); }, 5s))
          << edge.metric("streamflex_edge_cache_bytes");
    append(*produced, std::string_view(second_body).substr(kSentBeforeBreak + 55000));
    produced->end();
  }
  std::string body;
  BreakingUpstream first;
  Upstream second;
  EdgeUnderTest edge;
  std::future<Result<http::ClientResponse>> viewer;
};

TEST(EdgeResume, ChunkedBodyBrokenOffIsContinuedLiveFromTheNextUpstream) {
  ChunkedResume run(part_body());
  auto r = run.viewer.get();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("x-cache"), "MISS");
  EXPECT_TRUE(as_chars(r->body.view()) == run.body) << r->body.size() << " of " << run.body.size() << " bytes";
  EXPECT_EQ(run.first.requests.load(), 1);
  EXPECT_EQ(run.edge.metric("streamflex_edge_upstream_resumes_total", {"result=\"resumed\""}), 1);
  auto again = get(run.edge.endpoint(), kPart);
  EXPECT_EQ(again.header("x-cache"), "HIT");
  EXPECT_TRUE(as_chars(again.body.view()) == run.body);
}

TEST(EdgeResume, ChunkedBodyIsNotContinuedFromAnUpstreamWithOtherBytes) {
  auto other = part_body();
  other[kSentBeforeBreak - 1] = static_cast<char>(other[kSentBeforeBreak - 1] ^ 1);  // the last byte the viewer has
  ChunkedResume run(other);
  auto r = run.viewer.get();
  EXPECT_FALSE(r) << "the viewer took a spliced body for a whole one";
  EXPECT_EQ(run.edge.metric("streamflex_edge_upstream_resumes_total", {"result=\"differed\""}), 1);
  EXPECT_EQ(run.edge.metric("streamflex_edge_upstream_resumes_total", {"result=\"resumed\""}), 0);
}

// The cache counts a chunked body's bytes as they arrive (it was 0 until the complete object came),
// and after the end holds the complete object's size; after a break-off, nothing of it.
TEST(EdgeChunked, CacheCountsAnArrivingChunkedBodyAndReleasesItAtTheEndOrABreakOff) {
  Upstream upstream;
  EdgeUnderTest edge({upstream.address()});
  auto cache_bytes = [&] { return edge.metric("streamflex_edge_cache_bytes"); };
  const std::string body = part_body(300 * 1024);
  const std::string_view view(body);
  {
    ChunkedViewers crowd(edge.endpoint(), 3, "/live/s/video/s9.m4s");
    ASSERT_TRUE(eventually([&] { return upstream.held_count() == 1; }, 10s));
    auto produced = answer_chunked(upstream);
    ASSERT_TRUE(eventually([&] { return edge.metric("streamflex_edge_waiting_requests") == 0; }, 10s));
    EXPECT_EQ(cache_bytes(), 0);
    append(*produced, view.substr(0, 40 * 1024));
    EXPECT_TRUE(eventually([&] { return cache_bytes() == 40 * 1024; }, 10s)) << cache_bytes();
    append(*produced, view.substr(40 * 1024, 100 * 1024));
    EXPECT_TRUE(eventually([&] { return cache_bytes() == 140 * 1024; }, 10s)) << cache_bytes();
    append(*produced, view.substr(140 * 1024));
    produced->end();
    ASSERT_TRUE(crowd.wait_done(20s));
    for (auto& v : crowd.viewers) EXPECT_TRUE(*v.result && as_chars((*v.result)->body.view()) == body);
    // The complete object replaced the arriving one: counted once, at its size.
    EXPECT_TRUE(eventually([&] { return cache_bytes() == double(body.size()); }, 10s)) << cache_bytes();
  }
  {
    ChunkedViewers crowd(edge.endpoint(), 3, "/live/s/video/s10.m4s");
    ASSERT_TRUE(eventually([&] { return upstream.held_count() == 1; }, 10s));
    auto produced = answer_chunked(upstream);
    append(*produced, view.substr(0, 16 * 1024));
    EXPECT_TRUE(eventually([&] { return cache_bytes() == double(body.size() + 16 * 1024); }, 10s)) << cache_bytes();
    produced->fail();
    ASSERT_TRUE(crowd.wait_done(20s));
    EXPECT_TRUE(eventually([&] { return cache_bytes() == double(body.size()); }, 10s)) << cache_bytes();
  }
}

// Many chunked objects arriving at once, together larger than the cache: the cache stays within
// its bound by evicting (arriving objects included), and every viewer still gets its whole body.
TEST(EdgeChunked, ManyArrivingChunkedObjectsKeepTheCacheWithinItsBoundAndEveryViewerFed) {
  Upstream upstream;
  Config config;
  config.cache_bytes = 1024 * 1024;
  EdgeUnderTest edge({upstream.address()}, config);
  constexpr int kObjects = 8;
  const std::string body = part_body(200 * 1024);
  const std::string_view view(body);
  std::vector<std::unique_ptr<ChunkedViewers>> crowds;
  for (int i = 0; i < kObjects; ++i)
    crowds.push_back(
        std::make_unique<ChunkedViewers>(edge.endpoint(), 2, "/live/s/video/s" + std::to_string(20 + i) + ".m4s"));
  ASSERT_TRUE(eventually([&] { return upstream.held_count() == kObjects; }, 10s));
  auto produced = answer_chunked(upstream);  // one body, sent to each of the edge's fetches
  double most = 0;
  for (std::size_t at = 0; at < body.size(); at += 20 * 1024) {
    auto bound = std::min<std::size_t>(body.size(), at + 20 * 1024);
    append(*produced, view.substr(at, bound - at));
    // Each fetch has had this piece once every viewer has it.
    ASSERT_TRUE(eventually(
        [&] { return std::all_of(crowds.begin(), crowds.end(), [&](auto& c) { return c->all_have(bound); }); }, 10s));
    most = std::max(most, edge.metric("streamflex_edge_cache_bytes"));
  }
  produced->end();
  for (auto& c : crowds) {
    ASSERT_TRUE(c->wait_done(20s));
    for (auto& v : c->viewers) {
      ASSERT_TRUE(*v.result) << v.result->error().message();
      EXPECT_TRUE(as_chars((*v.result)->body.view()) == body);
    }
  }
  EXPECT_LE(most, double(config.cache_bytes));
  EXPECT_GT(most, 0.5 * double(config.cache_bytes)) << "the arriving objects were hardly counted";
  EXPECT_GT(edge.metric("streamflex_edge_cache_evictions"), 0);
  EXPECT_LE(edge.metric("streamflex_edge_cache_bytes"), double(config.cache_bytes));
  EXPECT_EQ(upstream.total(), kObjects);
}

// One HTTP/1.0 GET on a raw socket, read to the connection's end (an HTTP/1.0 answer without
// keep-alive ends there) or until `timeout`: the answer as received.
std::string get_http10(net::Endpoint at, const std::string& target, Clock::duration timeout = 20s) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return {};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(at.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string got;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string req = "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      timeval tv{0, 100 * 1000};  // each recv waits at most 100 ms: the deadline is checked between
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      auto deadline = Clock::now() + timeout;
      char buf[65536];
      while (Clock::now() < deadline) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
          got.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
          break;
        }
      }
    }
  }
  ::close(fd);
  return got;
}

// A raw answer's status line, a header's value ("" if absent) and its body.
struct RawAnswer {
  explicit RawAnswer(const std::string& raw) {
    auto end = raw.find("\r\n\r\n");
    head = raw.substr(0, end);
    if (end != std::string::npos) body = raw.substr(end + 4);
    status_line = head.substr(0, head.find("\r\n"));
  }
  std::string header(std::string_view name) const {
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    auto at = lower.find("\r\n" + std::string(name) + ":");
    if (at == std::string::npos) return {};
    auto from = at + 3 + name.size();
    auto line = head.substr(from, head.find("\r\n", from) - from);
    return line.substr(line.find_first_not_of(' '));
  }
  std::string head, body, status_line;
};

// An HTTP/1.0 viewer cannot be sent chunked coding, and a body delimited by the connection's end
// would look whole even if the upstream broke it off: whether it waited for the object (coalesced)
// or found it arriving (a hit), it gets the whole object once complete, with Content-Length, while
// HTTP/1.1 viewers have it chunk by chunk.
TEST(EdgeChunked, HttpOneZeroViewersGetAnArrivingChunkedObjectWholeWithContentLength) {
  Upstream upstream;
  EdgeUnderTest edge({upstream.address()});
  const std::string segment = "/live/s/video/s11.m4s";
  const std::string body = part_body(300 * 1024);
  const std::string_view view(body);
  ChunkedViewers crowd(edge.endpoint(), 3, segment);
  ASSERT_TRUE(eventually([&] { return edge.metric("streamflex_edge_waiting_requests") == 3; }, 10s));
  auto waiter = std::async(std::launch::async, [&] { return get_http10(edge.endpoint(), segment); });
  ASSERT_TRUE(eventually([&] { return edge.metric("streamflex_edge_waiting_requests") == 4; }, 10s));
  ASSERT_TRUE(eventually([&] { return upstream.held_count() == 1; }, 5s));
  auto produced = answer_chunked(upstream);
  append(*produced, view.substr(0, 40 * 1024));
  ASSERT_TRUE(eventually([&] { return crowd.all_have(40 * 1024); }, 10s));
  // Arriving now: a hit on the object still arriving, which waits as well.
  auto hit = std::async(std::launch::async, [&] { return get_http10(edge.endpoint(), segment); });
  EXPECT_TRUE(eventually([&] { return edge.metric("streamflex_edge_waiting_requests") == 2; }, 10s))
      << edge.metric("streamflex_edge_waiting_requests") << " waiting (the HTTP/1.0 viewers are)";
  EXPECT_EQ(waiter.wait_for(0s), std::future_status::timeout) << "an HTTP/1.0 viewer was answered before the end";
  EXPECT_EQ(hit.wait_for(0s), std::future_status::timeout) << "an HTTP/1.0 viewer was answered before the end";
  append(*produced, view.substr(40 * 1024));
  produced->end();
  ASSERT_TRUE(crowd.wait_done(20s));
  for (auto& v : crowd.viewers) {
    ASSERT_TRUE(*v.result);
    EXPECT_EQ((*v.result)->header("transfer-encoding"), "chunked");
  }
  std::map<std::string, int> by_cache;
  for (auto* f : {&waiter, &hit}) {
    RawAnswer a(f->get());
    EXPECT_EQ(a.status_line, "HTTP/1.0 200 OK");
    EXPECT_EQ(a.header("content-length"), std::to_string(body.size())) << a.head;
    EXPECT_EQ(a.header("transfer-encoding"), "") << a.head;
    EXPECT_TRUE(a.body == body) << a.body.size() << " bytes, " << body.size() << " sent upstream";
    ++by_cache[a.header("x-cache")];
  }
  EXPECT_EQ(by_cache["COALESCED"], 1);
  EXPECT_EQ(by_cache["HIT"], 1);
  EXPECT_EQ(edge.metric("streamflex_edge_waiting_requests"), 0);
  EXPECT_EQ(upstream.count(segment), 1);
}

// If the upstream breaks the body off, the HTTP/1.0 viewers waiting for it get a 502, never a
// short 200 they would take for the object.
TEST(EdgeChunked, HttpOneZeroViewersOfABrokenOffChunkedObjectGet502) {
  Upstream upstream;
  EdgeUnderTest edge({upstream.address()});
  const std::string segment = "/live/s/video/s12.m4s";
  const std::string body = part_body(64 * 1024);
  auto waiter = std::async(std::launch::async, [&] { return get_http10(edge.endpoint(), segment); });
  ASSERT_TRUE(eventually([&] { return upstream.held_count() == 1; }, 10s));
  auto produced = answer_chunked(upstream);
  append(*produced, std::string_view(body).substr(0, 16 * 1024));
  ASSERT_TRUE(eventually([&] { return edge.metric("streamflex_edge_cache_bytes") == 16 * 1024; }, 10s));
  auto hit = std::async(std::launch::async, [&] { return get_http10(edge.endpoint(), segment); });
  ASSERT_TRUE(eventually([&] { return edge.metric("streamflex_edge_waiting_requests") == 2; }, 10s));
  produced->fail();
  for (auto* f : {&waiter, &hit}) {
    RawAnswer a(f->get());
    EXPECT_EQ(a.status_line, "HTTP/1.0 502 Bad Gateway") << a.head;
    EXPECT_EQ(a.header("x-cache"), "ERROR");
    EXPECT_EQ(a.header("content-length"), std::to_string(a.body.size()));
  }
}

// Every access event, its views copied.
struct AccessRecorder final : AccessLog {
  struct Event {
    std::string object;
    std::uint64_t bytes;
    int status;
    double ttfb_ms;
    std::string cache;
  };
  void on_access(const AccessEvent& e) override {
    std::lock_guard lock(mu);
    events.push_back({std::string(e.object), e.bytes, e.status, e.ttfb_ms, std::string(e.cache)});
  }
  std::vector<Event> of(std::string_view object) {
    std::lock_guard lock(mu);
    std::vector<Event> out;
    for (auto& e : events)
      if (e.object == object) out.push_back(e);
    return out;
  }
  std::mutex mu;
  std::vector<Event> events;
};

// The wait is bounded by the edge's usual hold time: an object still arriving past it gets the
// HTTP/1.0 viewer a 504, while HTTP/1.1 viewers go on getting it chunk by chunk.
TEST(EdgeChunked, HttpOneZeroViewerOfAChunkedObjectArrivingPastTheHoldTimeGets504) {
  Upstream upstream;
  Config config;
  config.upstream_timeout = 1500ms;  // the hold: upstream_timeout + blocking_timeout
  config.blocking_timeout = 500ms;
  auto log = std::make_shared<AccessRecorder>();
  EdgeUnderTest edge({upstream.address()}, config, log);
  const std::string segment = "/live/s/video/s13.m4s";
  const std::string body = part_body(64 * 1024);
  ChunkedViewers crowd(edge.endpoint(), 1, segment);
  ASSERT_TRUE(eventually([&] { return upstream.held_count() == 1; }, 10s));
  auto produced = answer_chunked(upstream);
  append(*produced, std::string_view(body).substr(0, 1024));
  ASSERT_TRUE(eventually([&] { return crowd.all_have(1024); }, 10s));
  auto t0 = Clock::now();
  auto late = std::async(std::launch::async, [&] { return get_http10(edge.endpoint(), segment); });
  std::size_t at = 1024;
  auto more = [&] {
    if (at >= body.size()) return;
    append(*produced, std::string_view(body).substr(at, 1024));
    at += 1024;
  };
  // A piece every 250 ms keeps the upstream within its stall deadline; until the hold time the
  // HTTP/1.0 viewer waits...
  while (Clock::now() - t0 < 1500ms) {  // the last wait ends by 1.75 s
    EXPECT_EQ(late.wait_for(250ms), std::future_status::timeout) << "answered before the body ended";
    more();
  }
  // ...then has its 504, the body still arriving.
  while (Clock::now() - t0 < 4s && late.wait_for(250ms) == std::future_status::timeout) more();
  more();
  produced->end();
  RawAnswer a(late.get());
  auto answered = Clock::now() - t0;
  EXPECT_EQ(a.status_line, "HTTP/1.0 504 Gateway Timeout") << a.head;
  EXPECT_GE(answered, 1900ms);
  EXPECT_LT(answered, 4s);
  ASSERT_TRUE(crowd.wait_done(10s));
  ASSERT_TRUE(*crowd.viewers[0].result);
  EXPECT_EQ(as_chars((*crowd.viewers[0].result)->body.view()), std::string_view(body).substr(0, at));
  // Its access event says what it got: the 504, not the 200 that came after the hold.
  ASSERT_TRUE(eventually([&] { return log->of("s13.m4s").size() == 2; }, 10s)) << log->of("s13.m4s").size();
  auto events = log->of("s13.m4s");
  auto timed_out = std::find_if(events.begin(), events.end(), [](auto& e) { return e.status == 504; });
  ASSERT_NE(timed_out, events.end());
  EXPECT_EQ(timed_out->cache, "ERROR");
  EXPECT_EQ(timed_out->bytes, a.body.size());
  EXPECT_EQ(std::count_if(events.begin(), events.end(), [](auto& e) { return e.status == 200; }), 1);
}

// A chunked answer's size is unknown when it is handed over: its access event goes out when it
// ends, with the body bytes written to that viewer (all of them, or those before a break-off).
TEST(EdgeChunked, AccessEventsOfChunkedAnswersCarryTheBytesEachViewerWasSent) {
  Upstream upstream;
  auto log = std::make_shared<AccessRecorder>();
  EdgeUnderTest edge({upstream.address()}, {}, log);
  const std::string body = part_body(300 * 1024);
  const std::string_view view(body);
  {
    ChunkedViewers crowd(edge.endpoint(), 5, "/live/s/video/s14.m4s");
    ASSERT_TRUE(eventually([&] { return edge.metric("streamflex_edge_waiting_requests") == 5; }, 10s));
    ASSERT_TRUE(eventually([&] { return upstream.held_count() == 1; }, 10s));
    auto produced = answer_chunked(upstream);
    append(*produced, view.substr(0, 40 * 1024));
    ASSERT_TRUE(eventually([&] { return crowd.all_have(40 * 1024); }, 10s));
    EXPECT_TRUE(log->of("s14.m4s").empty()) << "an event before its answer ended";
    append(*produced, view.substr(40 * 1024));
    produced->end();
    ASSERT_TRUE(crowd.wait_done(20s));
    ASSERT_TRUE(eventually([&] { return log->of("s14.m4s").size() == 5; }, 10s)) << log->of("s14.m4s").size();
    std::map<std::string, int> by_cache;
    for (auto& e : log->of("s14.m4s")) {
      EXPECT_EQ(e.bytes, body.size());
      EXPECT_EQ(e.status, 200);
      EXPECT_GE(e.ttfb_ms, 0);
      EXPECT_LT(e.ttfb_ms, 10000);
      ++by_cache[e.cache];
    }
    EXPECT_EQ(by_cache["MISS"], 1);
    EXPECT_EQ(by_cache["COALESCED"], 4);
  }
  {
    ChunkedViewers crowd(edge.endpoint(), 3, "/live/s/video/s15.m4s");
    ASSERT_TRUE(eventually([&] { return upstream.held_count() == 1; }, 10s));
    auto produced = answer_chunked(upstream);
    append(*produced, view.substr(0, 16 * 1024));
    ASSERT_TRUE(eventually([&] { return crowd.all_have(16 * 1024); }, 10s));
    produced->fail();
    ASSERT_TRUE(crowd.wait_done(20s));
    ASSERT_TRUE(eventually([&] { return log->of("s15.m4s").size() == 3; }, 10s)) << log->of("s15.m4s").size();
    for (auto& e : log->of("s15.m4s")) EXPECT_EQ(e.bytes, 16u * 1024);
  }
  // A hit on the complete object: its size, at once, as ever.
  get(edge.endpoint(), "/live/s/video/s14.m4s");
  ASSERT_TRUE(eventually([&] { return log->of("s14.m4s").size() == 6; }, 10s));
  EXPECT_EQ(log->of("s14.m4s").back().cache, "HIT");
  EXPECT_EQ(log->of("s14.m4s").back().bytes, body.size());
}

// ---- viewer tokens ---------------------------------------------------------------------------

// An origin stand-in whose /live/ objects are all marked X-SF-Access: token; it records the
// X-SF-Token the edge sent.
struct ProtectedUpstream {
  ProtectedUpstream() : pool(1), server(pool, net::Endpoint{"127.0.0.1", 0}) {
    server.route_prefix("GET", "/live/", [this](http::Request& req) {
      ++fetches;
      {
        std::lock_guard lock(mu);
        edge_token = req.header("x-sf-token");
      }
      if (req.path.find("/nothing/") != std::string::npos) return http::Response::text(404, "not found\n");
      http::Response r;
      if (req.path.ends_with(".m3u8")) {
        r.content_type = "application/vnd.apple.mpegurl";
        r.body = "#EXTM3U\n#EXT-X-MAP:URI=\"init1.mp4\"\n#EXTINF:2.0,\ns1.m4s\n";
        r.headers.emplace_back("Cache-Control", "max-age=1");
      } else {
        r.content_type = "video/iso.segment";
        r.body = "segment bytes";
        r.headers.emplace_back("Cache-Control", kImmutable);
      }
      r.headers.emplace_back("X-SF-Access", protect ? "token" : "public");
      return r;
    });
    pool.start();
    server.start();
  }
  ~ProtectedUpstream() {
    server.stop();
    drain(pool, [&] { return server.active_connections(); });
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server.port()); }

  net::IoPool pool;
  http::Server server;
  std::atomic<int> fetches{0};
  std::atomic<bool> protect{true};
  std::mutex mu;
  std::string edge_token;
};

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TEST(EdgeViewerTokens, MarkedObjectsNeedAValidTokenAndAreCachedOnceForEveryToken) {
  ProtectedUpstream up;
  const auth::TokenKey key{"k1", "edge-test-secret-0123456789"};
  Config config;
  config.token_keys = {key};
  EdgeUnderTest edge({up.address()}, config);
  const std::string part = "/live/s/video/s1.m4s";
  auto a = auth::issue_token(key, "s", unix_now() + 60);
  auto b = auth::issue_token(key, "s", unix_now() + 61);

  EXPECT_EQ(get(edge.endpoint(), part).status, 403);
  auto first = get(edge.endpoint(), part + "?token=" + a);
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(as_chars(first.body.view()), "segment bytes");
  auto second = get(edge.endpoint(), part + "?token=" + b);
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.header("x-cache"), "HIT");
  EXPECT_EQ(get(edge.endpoint(), part + "?token=" + auth::issue_token(key, "other", unix_now() + 60)).status, 403);
  EXPECT_EQ(get(edge.endpoint(), part + "?token=" + auth::issue_token(key, "s", unix_now() - 1)).status, 403);
  EXPECT_EQ(get(edge.endpoint(), part).status, 403);  // cached, still refused
  EXPECT_EQ(up.fetches.load(), 1);
  std::lock_guard lock(up.mu);
  EXPECT_TRUE(auth::verify_token({key}, up.edge_token, "s", unix_now(), "")) << up.edge_token;
}

TEST(EdgeViewerTokens, PlaylistNamesEveryUrlWithTheViewersToken) {
  ProtectedUpstream up;
  const auth::TokenKey key{"k1", "edge-test-secret-0123456789"};
  Config config;
  config.token_keys = {key};
  EdgeUnderTest edge({up.address()}, config);
  auto a = auth::issue_token(key, "s", unix_now() + 60);
  auto r = get(edge.endpoint(), "/live/s/video/index.m3u8?token=" + a);
  ASSERT_EQ(r.status, 200);
  auto body = std::string(as_chars(r.body.view()));
  EXPECT_NE(body.find("URI=\"init1.mp4?token=" + a + "\""), std::string::npos) << body;
  EXPECT_NE(body.find("\ns1.m4s?token=" + a + "\n"), std::string::npos) << body;
  EXPECT_EQ(r.header("x-sf-access"), "token");
}

TEST(EdgeViewerTokens, VisibilityChangeReachesObjectsCachedBeforeIt) {
  ProtectedUpstream up;
  const auth::TokenKey key{"k1", "edge-test-secret-0123456789"};
  Config config;
  config.token_keys = {key};
  EdgeUnderTest edge({up.address()}, config);
  auto a = auth::issue_token(key, "s", unix_now() + 60);
  const std::string part = "/live/s/video/s1.m4s", playlist = "/live/s/video/index.m3u8";
  ASSERT_EQ(get(edge.endpoint(), part + "?token=" + a).status, 200);  // cached for a year
  EXPECT_EQ(get(edge.endpoint(), part).status, 403);
  // The stream is made public: the next playlist fetch (max-age 1) says so, and the cached part
  // follows without being fetched again.
  up.protect = false;
  std::this_thread::sleep_for(1100ms);
  auto pl = get(edge.endpoint(), playlist);
  EXPECT_EQ(pl.status, 200);
  EXPECT_EQ(pl.header("x-sf-access"), "public");
  auto r = get(edge.endpoint(), part);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-cache"), "HIT");
  // And back.
  up.protect = true;
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(get(edge.endpoint(), playlist).status, 403);
  EXPECT_EQ(get(edge.endpoint(), part).status, 403);
  EXPECT_EQ(get(edge.endpoint(), part + "?token=" + a).status, 200);
}

TEST(EdgeViewerTokens, UnmarkedAnswersLeaveTheStreamProtected) {
  ProtectedUpstream up;
  const auth::TokenKey key{"k1", "edge-test-secret-0123456789"};
  Config config;
  config.token_keys = {key};
  EdgeUnderTest edge({up.address()}, config);
  auto a = auth::issue_token(key, "s", unix_now() + 60);
  ASSERT_EQ(get(edge.endpoint(), "/live/s/video/s1.m4s?token=" + a).status, 200);
  // A 404 without a marker (an object the origin does not have) must not make the stream public.
  EXPECT_EQ(get(edge.endpoint(), "/live/s/nothing/here?token=" + a).status, 404);
  EXPECT_EQ(get(edge.endpoint(), "/live/s/nothing/else").status, 403);  // a protected stream's 404 too
  EXPECT_EQ(get(edge.endpoint(), "/live/s/video/s1.m4s").status, 403);
}

TEST(EdgeViewerTokens, WithoutKeysMarkedObjectsAreRefused) {
  ProtectedUpstream up;
  EdgeUnderTest edge({up.address()});
  const auth::TokenKey key{"k1", "edge-test-secret-0123456789"};
  EXPECT_EQ(get(edge.endpoint(), "/live/s/video/s1.m4s?token=" + auth::issue_token(key, "s", unix_now() + 60)).status,
            403);
}

// A traversal is refused at the edge, however it is spelled, and never reaches the upstream (an
// edge may front an origin that maps paths to files); ordinary escapes and names with dots pass.
TEST(Edge, PathWithADotSegmentOrAnEncodedSlashIsRefusedWithoutAnUpstreamRequest) {
  Upstream upstream;
  upstream.add("/live/s/video/s1..m4s", part_body(1000), kImmutable);
  upstream.add("/live/s/video/a%20b.m4s", part_body(1000), kImmutable);
  EdgeUnderTest edge({upstream.address()});
  for (const char* bad : {"/live/s/video/../../etc/passwd", "/live/s/video/%2e%2e/x.m4s", "/live/s/%2E%2e/x.m4s",
                          "/live/s/video/.%2E/x.m4s", "/live/s/./x.m4s", "/live/s/video/..%2fx.m4s",
                          "/live/s/video/a%5cb.m4s", "/live/s/video/a%00b.m4s", "/live/s/video/a%2", "/live/s/a%zz"}) {
    auto r = get(edge.endpoint(), bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(r.header("x-cache"), "ERROR") << bad;
  }
  EXPECT_EQ(upstream.total(), 0);
  EXPECT_EQ(get(edge.endpoint(), "/live/s/video/s1..m4s").status, 200);
  EXPECT_EQ(get(edge.endpoint(), "/live/s/video/a%20b.m4s").status, 200);
}

// ---- the access log file --------------------------------------------------------------------

std::vector<nlohmann::json> json_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << line;
    out.push_back(std::move(j));
  }
  return out;
}

// Each served request is one JSON line, written within the writer's 250 ms: a miss then a hit of a
// part.
TEST(EdgeAccessLog, EveryServedRequestIsOneJsonLineInTheFile) {
  auto dir = std::filesystem::temp_directory_path() / fmt::format("sf-access-{}", ::getpid());
  std::filesystem::create_directories(dir);
  auto path = (dir / "access.log").string();
  Upstream upstream;
  upstream.add(kPart, part_body(), kImmutable);
  Metrics log_metrics;
  auto log = open_access_log(path, log_metrics);
  ASSERT_TRUE(log) << log.error().message();
  EdgeUnderTest edge({upstream.address()}, {}, *log);
  EXPECT_EQ(get(edge.endpoint(), kPart).status, 200);
  EXPECT_EQ(get(edge.endpoint(), kPart).status, 200);
  std::vector<nlohmann::json> lines;
  EXPECT_TRUE(eventually([&] { return (lines = json_lines(path)).size() >= 2; }, 5s));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["object"], "s5.p2.m4s");
  EXPECT_EQ(lines[0]["stream"], "s");
  EXPECT_EQ(lines[0]["rendition"], "video");
  EXPECT_EQ(lines[0]["status"], 200);
  EXPECT_EQ(lines[0]["bytes"], part_body().size());
  EXPECT_EQ(lines[0]["cache"], "MISS");
  EXPECT_EQ(lines[0]["remote"], "127.0.0.1");
  EXPECT_TRUE(lines[0]["time"].get<std::string>().ends_with("Z"));
  EXPECT_GE(lines[0]["ttfb_ms"].get<double>(), 0.0);
  EXPECT_EQ(lines[1]["cache"], "HIT");
  EXPECT_TRUE(eventually(
      [&] {
        std::ostringstream m;
        m << log_metrics.serialize();
        return m.str().find("streamflex_edge_access_log_lines_total{result=\"written\"} 2") != std::string::npos;
      },
      5s));
  std::filesystem::remove_all(dir);
}

// Whatever a request target holds (quotes, backslashes, line breaks, control and non-ASCII bytes)
// stays inside its JSON string: one valid line per event. Lines not yet written go out when the log
// is closed.
TEST(EdgeAccessLog, HostileFieldsStayInsideTheirStringsAndCloseWritesTheRest) {
  auto dir = std::filesystem::temp_directory_path() / fmt::format("sf-access-hostile-{}", ::getpid());
  std::filesystem::create_directories(dir);
  auto path = (dir / "access.log").string();
  const std::string hostile = std::string("a\"b\\c\nd\r\x01\x7f\xff\xc3\xa9}") + std::string(1, '\0') + "e";
  {
    Metrics metrics;
    auto log = open_access_log(path, metrics);
    ASSERT_TRUE(log) << log.error().message();
    for (int i = 0; i < 100; ++i) (*log)->on_access({hostile, hostile, hostile, 7, 200, 0.5, "HIT", hostile});
  }  // closed at once: well within the writer's 250 ms
  auto lines = json_lines(path);
  ASSERT_EQ(lines.size(), 100u);
  for (auto& l : lines) {
    EXPECT_EQ(l.size(), 9u);
    EXPECT_EQ(l["bytes"], 7);
    std::string object = l["object"];
    EXPECT_TRUE(object.starts_with("a\"b\\c\nd\r")) << object;
    EXPECT_TRUE(object.ends_with(std::string(1, '\0') + "e")) << object;
  }
  std::filesystem::remove_all(dir);
}

// A log that cannot be written (a full disk) loses its lines, counted, and nothing else.
TEST(EdgeAccessLog, UnwritableLogCountsItsLinesAsDropped) {
  Metrics metrics;
  {
    auto log = open_access_log("/dev/full", metrics);
    ASSERT_TRUE(log) << log.error().message();
    for (int i = 0; i < 5; ++i) (*log)->on_access({"s", "video", "s1.m4s", 1, 200, 0.1, "HIT", "127.0.0.1"});
  }
  EXPECT_NE(metrics.serialize().find("streamflex_edge_access_log_lines_total{result=\"dropped\"} 5"), std::string::npos)
      << metrics.serialize();
  EXPECT_FALSE(open_access_log("/nonexistent-dir/access.log", metrics));
}

}  // namespace
}  // namespace sf::edge
