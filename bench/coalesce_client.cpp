// Timing client (and a reference server) for bench/edge_coalescing.sh. Built by that script:
//   g++ -O2 -std=c++20 -o coalesce_client bench/coalesce_client.cpp
// Raw non-blocking sockets and epoll, one thread; times are CLOCK_MONOTONIC nanoseconds, the clock
// bench/edge_upstream.py records its answers with (time.monotonic_ns()), so the two compare.
//
//   coalesce_client client PORT PATH CONNS TIMEOUT_MS
//     Opens CONNS keep-alive connections to 127.0.0.1:PORT, waits until every one is established
//     (plus 300 ms, so the server has accepted them), then writes "GET PATH" on all of them in one
//     loop and reads the answers. Prints one JSON object: send times, and per connection the
//     status, the time its header block was complete, the time its whole body was in, the body
//     size and the X-Cache header.
//
//   coalesce_client floor PORT DELAY_MS BODY_BYTES TIMEOUT_MS
//     The ideal coalescing proxy, to measure this client's own floor: holds every request it gets,
//     and DELAY_MS after the first one answers all of them at once (BODY_BYTES of body each),
//     printing {"answer_ns": ...} when it starts writing; later requests are answered at once.
//     Exits after TIMEOUT_MS or on SIGTERM.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void raise_nofile() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return o;
}

// ------------------------------------------------------------------------------------ client

struct Conn {
  int fd = -1;
  bool connected = false, done = false, failed = false;
  std::string head;
  bool in_body = false, chunked = false, until_eof = false;
  long long content_length = -1, got = 0;
  // chunked decoding: 0 size line, 1 data, 2 CRLF after data, 3 trailers
  int cstate = 0;
  long long cleft = 0;
  std::string cline;
  int status = 0;
  std::string xcache, error;
  std::int64_t t_sent = 0, t_head = 0, t_body = 0;
};

// Feeds body bytes; returns true when the body is complete.
bool feed_body(Conn& c, const char* p, std::size_t n) {
  if (!c.chunked) {
    c.got += static_cast<long long>(n);
    return !c.until_eof && c.got >= c.content_length;
  }
  std::size_t i = 0;
  while (i < n) {
    if (c.cstate == 0 || c.cstate == 3) {
      char ch = p[i++];
      if (ch != '\n') {
        c.cline += ch;
        continue;
      }
      std::string line = c.cline;
      c.cline.clear();
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (c.cstate == 3) {
        if (line.empty()) return true;  // end of trailers
        continue;
      }
      c.cleft = std::strtoll(line.c_str(), nullptr, 16);
      c.cstate = c.cleft == 0 ? 3 : 1;
    } else if (c.cstate == 1) {
      std::size_t take = std::min<std::size_t>(n - i, static_cast<std::size_t>(c.cleft));
      c.got += static_cast<long long>(take);
      c.cleft -= static_cast<long long>(take);
      i += take;
      if (c.cleft == 0) c.cstate = 2;
    } else {  // CRLF after chunk data
      char ch = p[i++];
      if (ch == '\n') c.cstate = 0;
    }
  }
  return false;
}

void parse_head(Conn& c) {
  std::string_view h(c.head);
  auto eol = h.find("\r\n");
  auto first = h.substr(0, eol);
  auto sp = first.find(' ');
  if (sp != std::string_view::npos) c.status = std::atoi(std::string(first.substr(sp + 1, 3)).c_str());
  std::size_t pos = eol + 2;
  while (pos < h.size()) {
    auto e = h.find("\r\n", pos);
    if (e == std::string_view::npos || e == pos) break;
    auto line = h.substr(pos, e - pos);
    pos = e + 2;
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    auto name = lower(line.substr(0, colon));
    auto value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (name == "content-length") c.content_length = std::atoll(std::string(value).c_str());
    if (name == "transfer-encoding" && lower(value).find("chunked") != std::string::npos) c.chunked = true;
    if (name == "x-cache") c.xcache = std::string(value);
  }
  if (!c.chunked && c.content_length < 0) c.until_eof = true;
}

int run_client(int port, const std::string& path, int n, int timeout_ms) {
  raise_nofile();
  int ep = epoll_create1(0);
  std::vector<Conn> conns(static_cast<std::size_t>(n));
  auto addr = loopback(port);
  std::int64_t t_start = now_ns(), deadline = t_start + static_cast<std::int64_t>(timeout_ms) * 1000000;
  int connected = 0, failed_connect = 0;
  for (int i = 0; i < n; ++i) {
    auto& c = conns[static_cast<std::size_t>(i)];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      c.failed = true;
      c.error = std::string("socket: ") + std::strerror(errno);
      ++failed_connect;
      continue;
    }
    nodelay(c.fd);
    int r = connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (r < 0 && errno != EINPROGRESS) {
      c.failed = true;
      c.error = std::string("connect: ") + std::strerror(errno);
      ++failed_connect;
      continue;
    }
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = static_cast<std::uint64_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }
  std::vector<epoll_event> evs(1024);
  while (connected + failed_connect < n && now_ns() < deadline) {
    int k = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 100);
    for (int j = 0; j < k; ++j) {
      auto& c = conns[evs[static_cast<std::size_t>(j)].data.u64];
      if (c.connected || c.failed) continue;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        c.failed = true;
        c.error = std::string("connect: ") + std::strerror(err);
        ++failed_connect;
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        continue;
      }
      c.connected = true;
      ++connected;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = evs[static_cast<std::size_t>(j)].data.u64;
      epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
    }
  }
  std::int64_t t_connected = now_ns();
  // Let the server accept every connection before the burst.
  timespec pause{0, 300000000};
  nanosleep(&pause, nullptr);

  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: coalesce_client\r\n\r\n";
  std::int64_t t_send_first = 0, t_send_last = 0;
  int sent = 0;
  for (auto& c : conns) {
    if (!c.connected) continue;
    std::int64_t t = now_ns();
    ssize_t w = send(c.fd, req.data(), req.size(), MSG_NOSIGNAL);
    if (w != static_cast<ssize_t>(req.size())) {
      c.failed = true;
      c.error = "short send";
      continue;
    }
    c.t_sent = t;
    if (!t_send_first) t_send_first = t;
    t_send_last = t;
    ++sent;
  }

  static char buf[1 << 18];
  int finished = 0;
  for (auto& c : conns)
    if (!c.connected || c.failed) ++finished;
  // Level-triggered epoll, two passes per wake-up: first every connection still waiting for its
  // header block reads at most 4 KiB (so a header's time is not held back by other connections'
  // bodies), then each connection in its body reads one buffer; what is left is reported again.
  auto step = [&](Conn& c, std::size_t cap) {
    ssize_t r = recv(c.fd, buf, cap, 0);
    std::int64_t t = now_ns();
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      c.failed = true;
      c.error = std::string("recv: ") + std::strerror(errno);
      return;
    }
    if (r == 0) {
      if (c.in_body && c.until_eof) {
        c.t_body = t;
        c.done = true;
      } else {
        c.failed = true;
        c.error = c.in_body ? "closed in body" : "closed before headers";
      }
      return;
    }
    const char* p = buf;
    std::size_t left = static_cast<std::size_t>(r);
    if (!c.in_body) {
      std::size_t old = c.head.size();
      c.head.append(p, left);
      auto end = c.head.find("\r\n\r\n", old >= 3 ? old - 3 : 0);
      if (end == std::string::npos) return;
      c.t_head = t;
      std::size_t body_from = end + 4 - old;
      c.head.resize(end + 4);
      parse_head(c);
      c.in_body = true;
      p += body_from;
      left -= body_from;
      if (!c.chunked && !c.until_eof && c.content_length == 0) {
        c.t_body = t;
        c.done = true;
        return;
      }
    }
    if (left && feed_body(c, p, left)) {
      c.t_body = t;
      c.done = true;
    }
  };
  while (finished < n && now_ns() < deadline) {
    int k = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 50);
    for (int pass = 0; pass < 2; ++pass) {
      for (int j = 0; j < k; ++j) {
        auto& c = conns[evs[static_cast<std::size_t>(j)].data.u64];
        if (c.done || c.failed || c.fd < 0) continue;
        if (pass == 0 && c.in_body) continue;
        step(c, pass == 0 ? 4096 : sizeof buf);
        if (c.done || c.failed) {
          ++finished;
          epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        }
      }
    }
  }
  std::int64_t t_end = now_ns();
  // JSON out
  std::printf(
      "{\"conns\":%d,\"connected\":%d,\"sent\":%d,\"t_start\":%lld,\"t_connected\":%lld,"
      "\"t_send_first\":%lld,\"t_send_last\":%lld,\"t_end\":%lld,\"timed_out\":%s,\"results\":[",
      n, connected, sent, static_cast<long long>(t_start), static_cast<long long>(t_connected),
      static_cast<long long>(t_send_first), static_cast<long long>(t_send_last), static_cast<long long>(t_end),
      finished < n ? "true" : "false");
  bool first = true;
  for (auto& c : conns) {
    std::string err = c.error;
    if (!c.done && !c.failed) err = c.in_body ? "timeout in body" : "timeout before headers";
    std::string xc;
    for (char ch : c.xcache)
      if (ch != '"' && ch != '\\') xc += ch;
    std::printf(
        "%s{\"status\":%d,\"t_sent\":%lld,\"t_head\":%lld,\"t_body\":%lld,\"bytes\":%lld,\"x_cache\":\"%s\","
        "\"error\":\"%s\"}",
        first ? "" : ",", c.status, static_cast<long long>(c.t_sent), static_cast<long long>(c.t_head),
        static_cast<long long>(c.done ? c.t_body : 0), c.got, xc.c_str(), err.c_str());
    first = false;
    if (c.fd >= 0) close(c.fd);
  }
  std::printf("]}\n");
  return 0;
}

// ------------------------------------------------------------------------------------ floor

volatile sig_atomic_t g_stop = 0;
void on_term(int) {
  g_stop = 1;
}

struct SConn {
  int fd = -1;
  std::string in;
  bool pending = false;  // a complete request waits for the answer
  std::size_t out_off = 0;
  bool writing = false;
};

int run_floor(int port, int delay_ms, long long body_bytes, int timeout_ms) {
  raise_nofile();
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  auto addr = loopback(port);
  if (bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || listen(ls, 4096) < 0) {
    std::fprintf(stderr, "floor: bind/listen: %s\n", std::strerror(errno));
    return 1;
  }
  std::string response =
      "HTTP/1.1 200 OK\r\nContent-Type: video/iso.segment\r\nContent-Length: " + std::to_string(body_bytes) +
      "\r\nCache-Control: public, max-age=60\r\nX-Cache: FLOOR\r\n\r\n";
  std::string body(static_cast<std::size_t>(body_bytes), '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 131 + 7) & 0xFF);
  response += body;
  std::printf("{\"listening\":%d}\n", port);
  std::fflush(stdout);

  int ep = epoll_create1(0);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.u64 = ~0ull;
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
  std::vector<SConn> conns;
  conns.reserve(20000);
  std::int64_t deadline = now_ns() + static_cast<std::int64_t>(timeout_ms) * 1000000;
  std::int64_t t_first = 0, t_answer = 0;
  long long requests = 0, answered_at_once = 0;

  auto start_write = [&](std::size_t idx) {
    auto& c = conns[idx];
    c.pending = false;
    c.writing = true;
    c.out_off = 0;
    while (c.out_off < response.size()) {
      ssize_t w = send(c.fd, response.data() + c.out_off, response.size() - c.out_off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        c.writing = false;
        return;
      }
      c.out_off += static_cast<std::size_t>(w);
    }
    if (c.out_off >= response.size()) {
      c.writing = false;
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = idx;
    epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
  };

  std::vector<epoll_event> evs(1024);
  static char buf[65536];
  while (!g_stop && now_ns() < deadline) {
    int wait_ms = 50;
    if (t_first && !t_answer) {
      std::int64_t due = t_first + static_cast<std::int64_t>(delay_ms) * 1000000 - now_ns();
      wait_ms = due <= 0 ? 0 : static_cast<int>(std::min<std::int64_t>(50, (due + 999999) / 1000000));
      if (due > 0 && due < 1000000) wait_ms = 0;  // spin the last millisecond
    }
    int k = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), wait_ms);
    for (int j = 0; j < k; ++j) {
      auto id = evs[static_cast<std::size_t>(j)].data.u64;
      if (id == ~0ull) {
        for (;;) {
          int fd = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          nodelay(fd);
          conns.push_back({});
          conns.back().fd = fd;
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = conns.size() - 1;
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      auto& c = conns[id];
      if (c.fd < 0) continue;
      if (evs[static_cast<std::size_t>(j)].events & EPOLLOUT && c.writing) {
        while (c.out_off < response.size()) {
          ssize_t w = send(c.fd, response.data() + c.out_off, response.size() - c.out_off, MSG_NOSIGNAL);
          if (w <= 0) break;
          c.out_off += static_cast<std::size_t>(w);
        }
        if (c.out_off >= response.size()) {
          c.writing = false;
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = id;
          epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        }
      }
      if (evs[static_cast<std::size_t>(j)].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        for (;;) {
          ssize_t r = recv(c.fd, buf, sizeof buf, 0);
          if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
          if (r <= 0) {
            epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
            close(c.fd);
            c.fd = -1;
            break;
          }
          c.in.append(buf, static_cast<std::size_t>(r));
        }
        if (c.fd < 0) continue;
        auto e = c.in.find("\r\n\r\n");
        if (e != std::string::npos) {
          c.in.erase(0, e + 4);
          ++requests;
          if (!t_first) t_first = now_ns();
          if (t_answer) {
            start_write(id);
          } else {
            c.pending = true;
          }
        }
      }
    }
    if (t_first && !t_answer && now_ns() >= t_first + static_cast<std::int64_t>(delay_ms) * 1000000) {
      t_answer = now_ns();
      std::printf("{\"answer_ns\":%lld,\"first_request_ns\":%lld,\"held\":%lld}\n", static_cast<long long>(t_answer),
                  static_cast<long long>(t_first), requests);
      std::fflush(stdout);
      for (std::size_t i = 0; i < conns.size(); ++i)
        if (conns[i].fd >= 0 && conns[i].pending) {
          start_write(i);
          ++answered_at_once;
        }
      std::int64_t t_written = now_ns();
      std::printf("{\"written_ns\":%lld,\"answered_at_once\":%lld}\n", static_cast<long long>(t_written),
                  answered_at_once);
      std::fflush(stdout);
    }
  }
  std::printf("{\"requests\":%lld}\n", requests);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc == 6 && std::string(argv[1]) == "client")
    return run_client(std::atoi(argv[2]), argv[3], std::atoi(argv[4]), std::atoi(argv[5]));
  if (argc == 6 && std::string(argv[1]) == "floor")
    return run_floor(std::atoi(argv[2]), std::atoi(argv[3]), std::atoll(argv[4]), std::atoi(argv[5]));
  std::fprintf(stderr,
               "usage: %s client PORT PATH CONNS TIMEOUT_MS\n"
               "       %s floor PORT DELAY_MS BODY_BYTES TIMEOUT_MS\n",
               argv[0], argv[0]);
  return 2;
}
