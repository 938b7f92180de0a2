#include "sf/api/http_call.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "sf/http/client.h"

namespace sf::api {
namespace {

namespace asio = boost::asio;

asio::awaitable<Result<http::ClientResponse>> run_call(net::Endpoint at, std::string method, std::string target,
                                                       std::vector<std::pair<std::string, std::string>> headers,
                                                       std::string body, bool with_body,
                                                       std::chrono::milliseconds timeout) {
  http::ClientLimits limits;
  limits.max_body_bytes = 16 * 1024 * 1024;
  limits.connect_timeout = timeout;
  limits.timeout = timeout;
  http::Connection conn(co_await asio::this_coro::executor, std::move(at), limits);
  if (with_body)
    co_return co_await conn.request_with_body(std::move(method), std::move(target), std::move(headers), std::move(body),
                                              timeout);
  co_return co_await conn.request(std::move(method), std::move(target), std::move(headers), timeout);
}

}  // namespace

Result<HttpUrl> parse_http_url(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (!url.starts_with(scheme)) return fail(errc::invalid_argument);
  url.remove_prefix(scheme.size());
  auto slash = url.find_first_of("/?");
  auto authority = url.substr(0, slash);
  std::string target(slash == std::string_view::npos ? "/" : url.substr(slash));
  if (target.front() == '?') target.insert(0, "/");
  if (authority.empty() || authority.find('@') != std::string_view::npos) return fail(errc::invalid_argument);
  for (char c : target)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return fail(errc::invalid_argument);
  std::string hostport(authority);
  bool has_port = hostport.back() != ']' && hostport.rfind(':') != std::string::npos &&
                  (hostport.front() != '[' || hostport.rfind("]:") != std::string::npos);
  if (!has_port) hostport += ":80";
  auto ep = net::parse_endpoint(hostport);
  if (!ep || ep->port == 0) return fail(errc::invalid_argument);
  return HttpUrl{std::move(*ep), std::move(target)};
}

Result<HttpAnswer> http_call(const std::string& method, const std::string& url,
                             std::vector<std::pair<std::string, std::string>> headers, std::string body,
                             std::chrono::milliseconds timeout) {
  auto u = parse_http_url(url);
  if (!u) return std::unexpected(u.error());
  bool with_body = !body.empty() || (method != "GET" && method != "HEAD" && method != "DELETE");
  asio::io_context ctx;
  auto fut = asio::co_spawn(
      ctx, run_call(u->endpoint, method, u->target, std::move(headers), std::move(body), with_body, timeout),
      asio::use_future);
  ctx.run();
  auto r = fut.get();
  if (!r) return std::unexpected(r.error());
  HttpAnswer out;
  out.status = r->status;
  out.content_type = r->header("content-type");
  auto view = r->body.view();
  out.body.assign(reinterpret_cast<const char*>(view.data()), view.size());
  return out;
}

}  // namespace sf::api
