#include "session.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>
#include <chrono>

#include "sf/core/byte_reader.h"
#include "sf/core/log.h"
#include "sf/rtmp/handshake.h"

namespace sf::ingest {

namespace amf0 = rtmp::amf0;
using namespace std::chrono_literals;
using boost::system::error_code;

namespace {

constexpr std::size_t kReadBuffer = 64 * 1024;
constexpr std::uint32_t kControlCsid = 2;
constexpr std::uint32_t kCommandCsid = 3;
constexpr std::uint32_t kStatusCsid = 5;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string reason_of(const std::error_code& ec) {
  if (ec == errc::message_too_large) return "message_too_large";
  if (ec == errc::limit_exceeded) return "limit_exceeded";
  if (ec == errc::unsupported) return "unsupported";
  return "malformed";
}

// "key?token=x" -> "key"; the publish name may carry a query (RTMP URLs of some encoders).
std::string_view strip_query(std::string_view s) {
  return s.substr(0, s.find('?'));
}

std::string query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) return std::string(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

// A named coroutine taking its inputs by value: a capturing lambda coroutine would refer to
// captures of a temporary that is gone when the body runs on the worker pool.
asio::awaitable<Result<auth::PublishGrant>> check_key(auth::KeyStore* keys, auth::PublishRequest req) {
  co_return keys->check_publish(req);
}

}  // namespace

Session::Session(asio::ip::tcp::socket socket, SharedState& shared)
    : socket_(std::move(socket)),
      shared_(shared),
      id_(shared.next_session_id++),
      reader_(rtmp::ChunkLimits{static_cast<std::uint32_t>(shared.config.max_message_size),
                                static_cast<std::uint32_t>(shared.config.max_chunk_size), 64,
                                static_cast<std::size_t>(shared.config.max_message_size) * 2}),
      timer_(socket_.get_executor()) {
  error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  remote_ = ec ? "unknown" : ep.address().to_string() + ":" + std::to_string(ep.port());
  in_.resize(kReadBuffer);
}

Session::~Session() = default;

void Session::start(std::shared_ptr<Session> self) {
  auto ex = self->socket_.get_executor();
  asio::co_spawn(ex, self->watchdog(), asio::detached);
  asio::co_spawn(
      ex, [self]() -> asio::awaitable<void> { co_await self->run(); }, asio::detached);
}

void Session::close(std::string_view reason) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), r = std::string(reason)] { self->fail_with(r); });
}

void Session::fail_with(std::string_view reason) {
  if (close_reason_.empty()) close_reason_ = reason;
  error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  timer_.cancel();
}

asio::awaitable<void> Session::watchdog() {
  auto self = shared_from_this();
  deadline_ = std::chrono::steady_clock::now() + shared_.config.handshake_timeout;
  error_code ec;
  while (phase_ != Phase::closed) {
    timer_.expires_after(std::min<std::chrono::steady_clock::duration>(1s, shared_.config.handshake_timeout));
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (phase_ == Phase::closed || !socket_.is_open()) break;
    if (std::chrono::steady_clock::now() >= deadline_) {
      bool early = phase_ == Phase::handshake || phase_ == Phase::connecting || phase_ == Phase::connected;
      fail_with(early ? "handshake_timeout" : "idle_timeout");
      break;
    }
  }
}

asio::awaitable<void> Session::run() {
  bool ok = co_await handshake();
  error_code ec;
  while (ok && socket_.is_open()) {
    // feed() consumes whole chunks only, so the buffer must hold the peer's largest chunk
    // (bounded by ingest.max_chunk_size through the reader's limit) plus its headers.
    if (std::size_t need = reader_.chunk_size() + 32; in_.size() < need) in_.resize(need);
    std::size_t n = co_await socket_.async_read_some(asio::buffer(in_.data() + in_used_, in_.size() - in_used_),
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      // A publisher that ends without deleteStream, or closes with unread replies (reset), left.
      bool gone = ec == asio::error::eof || ec == asio::error::connection_reset;
      if (close_reason_.empty()) close_reason_ = gone ? "disconnected" : "io_error";
      break;
    }
    if (phase_ == Phase::publishing) {
      deadline_ = std::chrono::steady_clock::now() + shared_.config.idle_timeout;
      if (shared_.config.read_batch.count() > 0) adjust_low_water();
    }
    shared_.metrics.bytes_received.Increment(static_cast<double>(n));
    received_ += static_cast<std::uint32_t>(n);
    in_used_ += n;

    messages_.clear();
    auto consumed = reader_.feed(ByteView(in_.data(), in_used_), messages_);
    if (!consumed) {
      log::warn("ingest", "closing connection: bad chunk stream",
                {{"session", id_}, {"remote", remote_}, {"error", consumed.error().message()}});
      fail_with(reason_of(consumed.error()));
      break;
    }
    if (*consumed < in_used_) std::memmove(in_.data(), in_.data() + *consumed, in_used_ - *consumed);
    in_used_ -= *consumed;

    for (auto& m : messages_) {
      auto r = on_message(m);
      if (!r) {
        if (close_reason_.empty()) close_reason_ = reason_of(r.error());
        log::warn("ingest", "closing connection: bad message",
                  {{"session", id_}, {"remote", remote_}, {"type", m.type}, {"error", r.error().message()}});
        ok = false;
        break;
      }
      if (pending_publish_) {
        auto req = std::move(*pending_publish_);
        pending_publish_.reset();
        co_await publish(std::move(req));
        if (!socket_.is_open()) {
          ok = false;
          break;
        }
      }
    }
    if (peer_window_ && static_cast<std::uint32_t>(received_ - last_ack_) >= peer_window_) {
      // RTMP 5.4.3: acknowledge once the peer's window has been received.
      send_control(rtmp::kAcknowledgement, received_);
      last_ack_ = received_;
    }
    if (!out_.empty() && !co_await flush()) break;
    if (!ok) break;
  }
  phase_ = Phase::closed;
  if (close_reason_.empty()) close_reason_ = "disconnected";
  end_publish(close_reason_);
  error_code ignored;
  socket_.close(ignored);
  timer_.cancel();
  shared_.metrics.closed(close_reason_).Increment();
  shared_.metrics.connections_active.Decrement();
  --shared_.connections;
  {
    std::lock_guard lock(shared_.sessions_mu);
    shared_.sessions.erase(id_);
  }
  log::debug("ingest", "connection closed", {{"session", id_}, {"remote", remote_}, {"reason", close_reason_}});
}

asio::awaitable<bool> Session::handshake() {
  error_code ec;
  std::array<std::byte, rtmp::kC0C1Size> c0c1;
  co_await asio::async_read(socket_, asio::buffer(c0c1), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    if (close_reason_.empty()) close_reason_ = "handshake_incomplete";
    co_return false;
  }
  auto reply = rtmp::answer_handshake(c0c1);
  if (!reply) {
    log::warn("ingest", "closing connection: bad handshake",
              {{"session", id_}, {"remote", remote_}, {"error", reply.error().message()}, {"version", int(c0c1[0])}});
    fail_with("bad_handshake");
    co_return false;
  }
  (reply->mode == rtmp::HandshakeMode::digest ? shared_.metrics.handshakes_digest : shared_.metrics.handshakes_plain)
      .Increment();
  co_await asio::async_write(socket_, asio::buffer(reply->s0s1s2), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return false;
  // C2 echoes S1; clients disagree on its contents, so it is read and not checked (as FMS does).
  std::array<std::byte, rtmp::kHandshakeSize> c2;
  co_await asio::async_read(socket_, asio::buffer(c2), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    if (close_reason_.empty()) close_reason_ = "handshake_incomplete";
    co_return false;
  }
  received_ = static_cast<std::uint32_t>(rtmp::kC0C1Size + rtmp::kHandshakeSize);
  phase_ = Phase::connecting;
  co_return true;
}

asio::awaitable<bool> Session::flush() {
  error_code ec;
  co_await asio::async_write(socket_, asio::buffer(out_), asio::redirect_error(asio::use_awaitable, ec));
  out_.clear();
  if (ec) {
    if (close_reason_.empty()) close_reason_ = "io_error";
    co_return false;
  }
  co_return true;
}

Result<void> Session::on_message(const rtmp::Message& m) {
  switch (m.type) {
    case rtmp::kSetChunkSize:
    case rtmp::kAbort:
    case rtmp::kAcknowledgement:
    case rtmp::kSetPeerBandwidth:
      return {};  // chunk size and abort were applied by the reader; the rest needs no action
    case rtmp::kWindowAckSize: {
      ByteReader r(m.body.view());
      auto w = r.u32();
      if (!w) return std::unexpected(w.error());
      peer_window_ = *w;
      return {};
    }
    case rtmp::kUserControl: {
      ByteReader r(m.body.view());
      auto event = r.u16();
      if (!event) return std::unexpected(event.error());
      if (*event == 6) {  // PingRequest: answer PingResponse with the same timestamp
        auto ts = r.u32();
        if (!ts) return std::unexpected(ts.error());
        std::array<std::byte, 6> body{std::byte{0},         std::byte{7},        std::byte(*ts >> 24),
                                      std::byte(*ts >> 16), std::byte(*ts >> 8), std::byte(*ts)};
        writer_.write(kControlCsid, rtmp::kUserControl, 0, 0, body, out_);
      }
      return {};
    }
    case rtmp::kAmf0Command:
    case rtmp::kAmf3Command: {
      // Type 17 carries a 0x00 format byte before AMF0 values.
      auto body = m.body.view();
      if (m.type == rtmp::kAmf3Command && !body.empty()) body = body.subspan(1);
      auto args = amf0::decode(body);
      if (!args) return std::unexpected(args.error());
      return on_command(m, *args);
    }
    case rtmp::kAmf0Data:
    case rtmp::kAmf3Data: {
      auto body = m.body.view();
      if (m.type == rtmp::kAmf3Data && !body.empty()) body = body.subspan(1);
      auto args = amf0::decode(body);
      if (args) on_data(*args);  // metadata is informational; a bad one is not worth a disconnect
      return {};
    }
    case rtmp::kAudio:
    case rtmp::kVideo:
      return on_media(m.type, m.timestamp, m.body);
    case rtmp::kAggregate:
      return on_aggregate(m);
    default:
      return {};  // shared objects and unknown types are ignored, as FMS does
  }
}

Result<void> Session::on_command(const rtmp::Message& m, const std::vector<amf0::Value>& args) {
  if (args.empty() || !args[0].string()) return fail(errc::malformed);
  const std::string& name = *args[0].string();
  log::debug("ingest", "command", {{"session", id_}, {"name", name.substr(0, 64)}, {"stream_id", m.stream_id}});
  double txn = args.size() > 1 && args[1].number() ? *args[1].number() : 0;
  auto arg_string = [&](std::size_t i) -> std::string {
    return args.size() > i && args[i].string() ? *args[i].string() : std::string();
  };

  if (name == "connect") {
    if (phase_ != Phase::connecting) return fail(errc::malformed);
    const amf0::Value* cmd = args.size() > 2 ? &args[2] : nullptr;
    std::string app;
    double encoding = 0;
    if (cmd) {
      if (auto* a = cmd->get("app"); a && a->string()) app = *a->string();
      if (auto* e = cmd->get("objectEncoding"); e && e->number()) encoding = *e->number();
      enhanced_client_ = cmd->get("fourCcList") || cmd->get("videoFourCcInfoMap") || cmd->get("audioFourCcInfoMap");
    }
    auto q = app.find('?');
    if (q != std::string::npos) {
      app_query_ = app.substr(q + 1);
      app.resize(q);
    }
    app_ = app;
    send_control(rtmp::kWindowAckSize, static_cast<std::uint32_t>(shared_.config.window_ack_size));
    {
      std::array<std::byte, 5> bw{
          std::byte(shared_.config.window_ack_size >> 24), std::byte(shared_.config.window_ack_size >> 16),
          std::byte(shared_.config.window_ack_size >> 8), std::byte(shared_.config.window_ack_size), std::byte{2}};
      writer_.write(kControlCsid, rtmp::kSetPeerBandwidth, 0, 0, bw, out_);
    }
    writer_.set_chunk_size(static_cast<std::uint32_t>(shared_.config.out_chunk_size), out_);
    amf0::Object props{{"fmsVer", "FMS/3,0,1,123"}, {"capabilities", 31}};
    amf0::Object info{{"level", "status"},
                      {"code", "NetConnection.Connect.Success"},
                      {"description", "Connection succeeded."},
                      {"objectEncoding", encoding}};
    if (enhanced_client_) {
      // Enhanced RTMP: tell the client which FourCCs this server takes (CanForward = 0x04).
      info.emplace_back("fourCcList", amf0::Array{"avc1", "hvc1", "av01"});
      info.emplace_back("videoFourCcInfoMap", amf0::Object{{"avc1", 4}, {"hvc1", 4}, {"av01", 4}});
      // Audio other than AAC is decoded once into the ladder's AAC (and relayed as it came).
      info.emplace_back("audioFourCcInfoMap",
                        amf0::Object{{"mp4a", 4}, {".mp3", 4}, {"Opus", 4}, {"ac-3", 4}, {"ec-3", 4}, {"fLaC", 4}});
    }
    send_command(kCommandCsid, 0, {"_result", txn, props, info});
    phase_ = Phase::connected;
    return {};
  }
  if (phase_ == Phase::connecting) return fail(errc::malformed);  // commands before connect

  if (name == "releaseStream" || name == "FCPublish") {
    if (name == "FCPublish")
      send_command(kCommandCsid, 0,
                   {"onFCPublish", 0, amf0::Value::null(),
                    amf0::Object{{"code", "NetStream.Publish.Start"}, {"description", arg_string(3)}}});
    else
      send_command(kCommandCsid, 0, {"_result", txn, amf0::Value::null(), amf0::Value()});
    return {};
  }
  if (name == "createStream") {
    if (next_stream_id_ > 16) return fail(errc::limit_exceeded);
    send_command(kCommandCsid, 0, {"_result", txn, amf0::Value::null(), static_cast<double>(next_stream_id_++)});
    return {};
  }
  if (name == "publish") {
    if (phase_ == Phase::publishing || pending_publish_) return fail(errc::malformed);
    pending_publish_ = PublishRequest{txn, m.stream_id, arg_string(3)};
    return {};
  }
  if (name == "FCUnpublish") {
    // ffmpeg and OBS send FCUnpublish and close without deleteStream: the publish ends here.
    send_command(kCommandCsid, 0,
                 {"onFCUnpublish", 0, amf0::Value::null(),
                  amf0::Object{{"code", "NetStream.Unpublish.Success"}, {"description", arg_string(3)}}});
    if (phase_ == Phase::publishing) {
      end_publish("unpublished");
      phase_ = Phase::connected;
    }
    return {};
  }
  if (name == "deleteStream" || name == "closeStream") {
    if (phase_ == Phase::publishing) {
      send_status(m.stream_id, "status", "NetStream.Unpublish.Success", "Stream unpublished.");
      end_publish("unpublished");
      phase_ = Phase::connected;
    }
    return {};
  }
  if (name == "play" || name == "play2") {
    send_status(m.stream_id, "error", "NetStream.Play.Failed",
                "This server takes publishers only; watch over HLS or DASH.");
    close_reason_ = "play_refused";  // the status is flushed, then the connection ends
    return fail(errc::unsupported);
  }
  if (name == "getStreamLength" || name == "_checkbw" || name == "_result" || name == "_error" || name == "onBWDone")
    return {};
  if (txn > 0)
    send_command(kCommandCsid, 0,
                 {"_error", txn, amf0::Value::null(),
                  amf0::Object{{"level", "error"},
                               {"code", "NetConnection.Call.Failed"},
                               {"description", "Unknown command " + name.substr(0, 64)}}});
  return {};
}

asio::awaitable<void> Session::publish(PublishRequest req) {
  auto self = shared_from_this();
  std::string key(strip_query(req.name));
  if (key.empty()) key = query_param(app_query_, "key");
  // The key store may block (SQLite): ask it on the worker pool, then come back here.
  auth::PublishRequest check{std::move(key), app_, remote_};
  if (auto q = req.name.find('?'); q != std::string::npos) check.query = req.name.substr(q + 1);
  auto grant =
      co_await asio::co_spawn(shared_.workers, check_key(&shared_.keys, std::move(check)), asio::use_awaitable);
  if (!socket_.is_open()) co_return;
  if (!grant) {
    shared_.metrics.publish("rejected_key").Increment();
    log::warn("ingest", "publish refused: stream key not accepted",
              {{"session", id_}, {"remote", remote_}, {"app", app_}});
    send_status(req.stream_id, "error", "NetStream.Publish.Unauthorized", "Stream key not accepted.");
    co_await flush();
    fail_with("unauthorized");
    co_return;
  }
  PublishInfo info{
      grant->stream,         grant->key_id,           app_, remote_, {}, wall_ms(), id_, grant->profile, grant->latency,
      grant->part_target_ms, grant->segment_target_ms};
  auto live = std::make_shared<LiveStream>(info);
  live->stop = [weak = weak_from_this()](std::string_view reason) {
    if (auto s = weak.lock()) s->close(reason);
  };
  if (auto claimed = shared_.registry->claim(live, grant->takeover); !claimed) {
    shared_.metrics.publish("rejected_busy").Increment();
    log::warn("ingest", "publish refused: stream is already live",
              {{"session", id_}, {"remote", remote_}, {"stream", info.stream}});
    send_status(req.stream_id, "error", "NetStream.Publish.BadName", "Stream is already being published.");
    co_await flush();
    fail_with("conflict");
    co_return;
  }
  live_ = std::move(live);
  demuxer_.emplace();
  timeline_.emplace(shared_.config.max_timestamp_jump, shared_.config.timestamp_jump == "rebase"
                                                           ? Timeline::JumpMode::rebase
                                                           : Timeline::JumpMode::discontinuity);
  epoch_ = 0;
  trusted_relay_ = grant->relay;
  relay_epoch_refused_ = false;
  relayed_epoch_ = {};
  phase_ = Phase::publishing;
  deadline_ = std::chrono::steady_clock::now() + shared_.config.idle_timeout;
  shared_.metrics.publish("accepted").Increment();
  shared_.metrics.publishers_active.Increment();

  std::array<std::byte, 6> begin{std::byte{0},
                                 std::byte{0},
                                 std::byte(req.stream_id >> 24),
                                 std::byte(req.stream_id >> 16),
                                 std::byte(req.stream_id >> 8),
                                 std::byte(req.stream_id)};
  writer_.write(kControlCsid, rtmp::kUserControl, 0, 0, begin, out_);  // StreamBegin
  send_status(req.stream_id, "status", "NetStream.Publish.Start", info.stream + " is now published.");
  log::info("ingest", "publish started",
            {{"session", id_}, {"stream", info.stream}, {"key_id", info.key_id}, {"app", app_}, {"remote", remote_}});
  for (auto& o : shared_.observers)
    if (auto h = o->on_publish_start(live_->info())) handlers_.push_back(std::move(h));
}

void Session::adjust_low_water() {
  auto now = std::chrono::steady_clock::now();
  if (now - low_water_checked_ < 1s) return;
  low_water_checked_ = now;
  // Bytes the stream delivers in read_batch, bounded so a pause in the stream cannot hold data back
  // longer than the idle timeout allows and a burst cannot overflow the read buffer.
  double bps = live_ ? live_->snapshot().stats.bitrate_bps : 0;
  int want = static_cast<int>(std::min<double>(bps / 8 * shared_.config.read_batch.count() / 1000.0, 64 * 1024));
  if (want < 1) want = 1;
  if (want == low_water_) return;
  low_water_ = want;
  ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVLOWAT, &want, sizeof(want));
}

void Session::end_publish(std::string_view reason) {
  if (!live_) return;
  shared_.registry->release(*live_);
  shared_.metrics.publishers_active.Decrement();
  auto snap = live_->snapshot();
  log::info("ingest", "publish stopped",
            {{"session", id_},
             {"stream", snap.info.stream},
             {"reason", reason},
             {"duration_ms", wall_ms() - snap.info.started_ms},
             {"video_frames", snap.stats.video_frames},
             {"audio_frames", snap.stats.audio_frames},
             {"dropped_frames", snap.stats.dropped_frames},
             {"timestamp_jumps", snap.stats.timestamp_jumps}});
  for (auto& h : handlers_) h->on_stop(reason);
  handlers_.clear();
  live_.reset();
  demuxer_.reset();
  timeline_.reset();
}

void Session::on_data(const std::vector<amf0::Value>& args) {
  if (!live_ || args.empty()) return;
  if (auto msg = parse_relay_message(args)) {
    // A StreamFlex relay's (relay.h). Its arrival clock is handed on, trusted or not by the
    // handlers; a timestamp jump it announces raises this publish's epoch from the next frame on,
    // from an authenticated relay only (anyone else could start discontinuities at will).
    if (msg->epoch && *msg->epoch > relayed_epoch_.relayed()) {
      if (!trusted_relay_) {
        if (!relay_epoch_refused_)
          log::warn("ingest", "relayed timestamp jump ignored: not an authenticated relay",
                    {{"session", id_}, {"stream", live_->info().stream}});
        relay_epoch_refused_ = true;
      } else if (relayed_epoch_.raise(*msg->epoch)) {
        log::info("ingest", "relayed timestamp jump: discontinuity",
                  {{"session", id_}, {"stream", live_->info().stream}, {"relayed_epoch", *msg->epoch}});
      }
    }
    if (msg->media_ms && msg->arrival_ms)
      for (auto& h : handlers_) h->on_relay_clock(*msg->media_ms, *msg->arrival_ms);
    return;
  }
  // ["@setDataFrame", "onMetaData", {...}] or ["onMetaData", {...}]; keep the metadata itself.
  std::size_t i = 0;
  if (args[0].string() && *args[0].string() == "@setDataFrame") i = 1;
  if (args.size() <= i + 1 || !args[i].string() || *args[i].string() != "onMetaData") return;
  if (auto* enc = args[i + 1].get("encoder"); enc && enc->string()) live_->set_encoder(enc->string()->substr(0, 128));
}

Result<void> Session::on_media(std::uint8_t type, std::uint32_t timestamp, const Bytes& body) {
  if (phase_ != Phase::publishing) {
    // Media before a granted publish: a client that skips the handshake of commands.
    fail_with("media_before_publish");
    return {};
  }
  if (body.empty()) return {};  // some encoders send empty audio/video messages as keep-alives
  bool video = type == rtmp::kVideo;
  auto t = timeline_->map(video ? Timeline::Track::video : Timeline::Track::audio, timestamp);
  if (t.verdict == Timeline::Verdict::late) {
    live_->count_late();
    return {};
  }
  if (t.verdict == Timeline::Verdict::jumped) {
    // Once per jump: the other track's jump is absorbed by the timeline's shared offset.
    live_->count_jump();
    shared_.metrics.timestamp_jumps.Increment();
    log::warn("ingest", t.epoch != epoch_ ? "timestamp jump: discontinuity" : "timestamp jump rebased",
              {{"stream", live_->info().stream},
               {"wire_ms", timestamp},
               {"continues_at_ms", t.ms},
               {"epoch", t.epoch},
               {"track", video ? "video" : "audio"}});
  }
  epoch_ = t.epoch;  // stamped on the frames the demuxer hands out for this message
  auto before = demuxer_->skipped_frames();
  auto r = video ? demuxer_->video(t.ms, body, *this) : demuxer_->audio(t.ms, body, *this);
  if (!r) {
    if (r.error() == errc::unsupported) {
      log::error("ingest", "publish refused: unsupported codec",
                 {{"session", id_}, {"stream", live_->info().stream}, {"codec", demuxer_->detail()}});
      shared_.metrics.publish("rejected_codec").Increment();
      send_status(1, "error", "NetStream.Publish.Failed", "Unsupported codec: " + demuxer_->detail());
      close_reason_ = "unsupported_codec";
      // The status goes out with the next flush; the run loop then ends the connection.
      return fail(errc::unsupported);
    }
    return r;
  }
  if (demuxer_->skipped_frames() != before) live_->count_dropped();
  return {};
}

Result<void> Session::on_aggregate(const rtmp::Message& m) {
  // RTMP 7.1.7: FLV-tag-like records; sub-tag times are relative to the first one and rebased on
  // the aggregate's own timestamp.
  ByteReader r(m.body.view());
  std::optional<std::uint32_t> first;
  while (!r.empty()) {
    auto type = r.u8();
    auto size = r.u24();
    auto ts = r.u24();
    auto ts_ext = r.u8();
    if (!type || !size || !ts || !ts_ext || !r.skip(3)) return fail(errc::malformed);
    std::size_t offset = r.position();
    if (!r.skip(*size) || !r.skip(4)) return fail(errc::malformed);
    std::uint32_t sub_ts = *ts | (std::uint32_t(*ts_ext) << 24);
    if (!first) first = sub_ts;
    std::uint32_t at = m.timestamp + (sub_ts - *first);
    if (*type == rtmp::kAudio || *type == rtmp::kVideo) {
      if (auto res = on_media(*type, at, m.body.share(offset, *size)); !res) return res;
    }
  }
  return {};
}

void Session::on_track(const media::TrackConfig& track) {
  live_->set_track(track);
  nlohmann::json f{{"stream", live_->info().stream},
                   {"track", track.track_id},
                   {"codec", media::codec_name(track.codec)},
                   {"version", track.version}};
  if (track.video) {
    f["codec_string"] = track.video->codec_string;
    f["profile_idc"] = track.video->profile;
    f["level_idc"] = track.video->level;
    f["width"] = track.video->width;
    f["height"] = track.video->height;
  }
  if (track.audio) {
    f["codec_string"] = track.audio->codec_string;
    f["sample_rate"] = track.audio->sample_rate;
    f["channels"] = track.audio->channels;
  }
  log::info("ingest", "track configured", f);
  for (auto& h : handlers_) h->on_track(track);
}

void Session::on_frame(media::MediaFrame&& frame) {
  frame.epoch = relayed_epoch_.stamp(epoch_);
  live_->count_frame(frame, std::chrono::steady_clock::now());
  for (auto& h : handlers_) h->on_frame(frame);
}

void Session::send_command(std::uint32_t csid, std::uint32_t stream_id, std::initializer_list<amf0::Value> values) {
  std::vector<std::byte> body;
  amf0::encode_all(values, body);
  writer_.write(csid, rtmp::kAmf0Command, stream_id, 0, body, out_);
}

void Session::send_control(std::uint8_t type, std::uint32_t value) {
  std::array<std::byte, 4> body{std::byte(value >> 24), std::byte(value >> 16), std::byte(value >> 8),
                                std::byte(value)};
  writer_.write(kControlCsid, type, 0, 0, body, out_);
}

void Session::send_status(std::uint32_t stream_id, const char* level, const char* code, std::string description) {
  send_command(kStatusCsid, stream_id,
               {"onStatus", 0, amf0::Value::null(),
                amf0::Object{{"level", level}, {"code", code}, {"description", std::move(description)}}});
}

}  // namespace sf::ingest
