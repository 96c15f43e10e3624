#include "ordo/state_machine.h"

namespace ordo {
namespace {

// States are stored as JSON strings; names are restricted so no escaping is ever needed.
Status ValidateState(std::string_view state) {
  if (state.empty() || state.size() > 128) {
    return InvalidArgumentError("state name must be 1-128 bytes");
  }
  for (char c : state) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return InvalidArgumentError("state name '" + std::string(state) +
                                  "' contains a quote, backslash or control character");
    }
  }
  return OkStatus();
}

std::string Encode(std::string_view state) { return "\"" + std::string(state) + "\""; }

Result<std::string> Decode(std::string_view key, const std::string& stored) {
  if (stored.size() < 2 || stored.front() != '"' || stored.back() != '"') {
    return InvalidArgumentError("object '" + std::string(key) +
                                "' does not hold a state (a JSON string)");
  }
  return stored.substr(1, stored.size() - 2);
}

}  // namespace

StateMachine::StateMachine(VersionedStore& store, std::vector<Edge> allowed) : store_(store) {
  for (auto& e : allowed) allowed_.insert(std::move(e));
}

bool StateMachine::Allowed(std::string_view from, std::string_view to) const {
  return allowed_.count(Edge(std::string(from), std::string(to))) != 0;
}

Result<std::uint64_t> StateMachine::Create(std::string_view key, std::string_view initial) {
  ORDO_RETURN_IF_ERROR(ValidateState(initial));
  return store_.CompareAndSwap(key, 0, Encode(initial));
}

Result<std::string> StateMachine::Current(std::string_view key) {
  auto got = store_.Get(key);
  if (!got.ok()) return got.status();
  return Decode(key, got->value);
}

Result<std::uint64_t> StateMachine::Transition(std::string_view key, std::string_view from,
                                               std::string_view to) {
  auto version = Check(key, from, to);
  if (!version.ok()) return version.status();
  return store_.CompareAndSwap(key, *version, Encode(to));
}

Result<std::uint64_t> StateMachine::Transition(std::string_view key, std::string_view from,
                                               std::string_view to, std::uint64_t token,
                                               std::string_view lock_name) {
  auto version = Check(key, from, to);
  if (!version.ok()) return version.status();
  return store_.CompareAndSwap(key, *version, Encode(to), token, lock_name);
}

Result<std::uint64_t> StateMachine::Check(std::string_view key, std::string_view from,
                                          std::string_view to) {
  ORDO_RETURN_IF_ERROR(ValidateState(from));
  ORDO_RETURN_IF_ERROR(ValidateState(to));
  if (!Allowed(from, to)) {
    return InvalidArgumentError("transition " + std::string(from) + " -> " + std::string(to) +
                                " is not allowed");
  }
  auto got = store_.Get(key);
  if (!got.ok()) return got.status();
  auto state = Decode(key, got->value);
  if (!state.ok()) return state.status();
  if (*state != from) {
    return VersionMismatchError("object '" + std::string(key) + "' is in state " + *state +
                                    ", not " + std::string(from),
                                got->version);
  }
  return got->version;
}

}  // namespace ordo
