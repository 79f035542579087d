#include "yaml_tree.h"

#include <yaml.h>

#include <unordered_map>

namespace authbypass::yaml {

namespace {

const std::string kEmpty;

// Owns one libyaml parser (RAII over its C init/delete pair).
class Parser {
 public:
  explicit Parser(std::string_view text) {
    ok_ = yaml_parser_initialize(&p_) != 0;
    if (ok_) {
      yaml_parser_set_input_string(&p_, reinterpret_cast<const unsigned char*>(text.data()),
                                   text.size());
    }
  }
  ~Parser() {
    if (ok_) yaml_parser_delete(&p_);
  }
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;
  bool ok() const { return ok_; }
  yaml_parser_t* get() { return &p_; }

 private:
  yaml_parser_t p_{};
  bool ok_ = false;
};

// Owns one event.
struct Event {
  yaml_event_t e{};
  Event() = default;
  ~Event() { yaml_event_delete(&e); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
};

Mark mark_of(const yaml_mark_t& m) {
  return Mark{static_cast<int>(m.line), static_cast<int>(m.column)};
}

bool is_null_word(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

}  // namespace

std::unique_ptr<Tree> Tree::parse(std::string_view text, std::optional<ParseError>& error,
                                  int max_depth) {
  error.reset();
  auto tree = std::make_unique<Tree>();
  Parser parser(text);
  if (!parser.ok()) {
    error = ParseError{{}, "cannot start the YAML parser (out of memory)"};
    return nullptr;
  }
  std::vector<std::uint32_t> open;  // open collections, innermost last
  std::unordered_map<std::string, std::uint32_t> anchors;
  std::vector<std::string> open_anchor;  // anchor of each open collection ("" if none)

  // Adds node `i` to the innermost open collection, or makes it a document root.
  auto attach = [&](std::uint32_t i) {
    if (open.empty()) {
      tree->documents_.push_back(Node(tree.get(), i));
    } else {
      tree->nodes_[open.back()].children.push_back(i);
    }
  };
  auto new_node = [&](Kind kind, const yaml_mark_t& m, const yaml_char_t* tag) {
    auto i = static_cast<std::uint32_t>(tree->nodes_.size());
    Data d;
    d.kind = kind;
    d.mark = mark_of(m);
    d.tag = tag != nullptr ? std::string(reinterpret_cast<const char*>(tag)) : std::string("?");
    tree->nodes_.push_back(std::move(d));
    return i;
  };
  auto anchor_of = [](const yaml_char_t* a) {
    return a != nullptr ? std::string(reinterpret_cast<const char*>(a)) : std::string();
  };

  for (;;) {
    Event ev;
    if (yaml_parser_parse(parser.get(), &ev.e) == 0) {
      const yaml_parser_t& p = *parser.get();
      std::string msg = p.problem != nullptr ? p.problem : "syntax error";
      if (p.context != nullptr) msg += std::string(" ") + p.context;
      error = ParseError{mark_of(p.problem_mark), msg};
      return nullptr;
    }
    switch (ev.e.type) {
      case YAML_STREAM_END_EVENT:
        return tree;
      case YAML_SCALAR_EVENT: {
        const auto& s = ev.e.data.scalar;
        std::string_view value(reinterpret_cast<const char*>(s.value), s.length);
        bool plain = s.style == YAML_PLAIN_SCALAR_STYLE;
        Kind kind =
            (plain && s.tag == nullptr && is_null_word(value)) ? Kind::kNull : Kind::kScalar;
        std::uint32_t i = new_node(kind, ev.e.start_mark, s.tag);
        if (s.tag == nullptr && !plain) tree->nodes_[i].tag = "!";
        tree->nodes_[i].text.assign(value);
        if (s.anchor != nullptr) anchors[anchor_of(s.anchor)] = i;
        attach(i);
        break;
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        if (static_cast<int>(open.size()) >= max_depth) {
          error = ParseError{
              mark_of(ev.e.start_mark),
              "YAML nested too deeply (more than " + std::to_string(max_depth) + " levels)", true};
          return nullptr;
        }
        bool seq = ev.e.type == YAML_SEQUENCE_START_EVENT;
        const yaml_char_t* tag = seq ? ev.e.data.sequence_start.tag : ev.e.data.mapping_start.tag;
        const yaml_char_t* anchor =
            seq ? ev.e.data.sequence_start.anchor : ev.e.data.mapping_start.anchor;
        std::uint32_t i = new_node(seq ? Kind::kSequence : Kind::kMap, ev.e.start_mark, tag);
        attach(i);
        open.push_back(i);
        // Registered at the end: an alias inside its own anchor would make a cycle.
        open_anchor.push_back(anchor_of(anchor));
        break;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        if (!open_anchor.back().empty()) anchors[open_anchor.back()] = open.back();
        open.pop_back();
        open_anchor.pop_back();
        break;
      case YAML_ALIAS_EVENT: {
        auto it = anchors.find(anchor_of(ev.e.data.alias.anchor));
        if (it == anchors.end()) {
          error =
              ParseError{mark_of(ev.e.start_mark), "alias '*" + anchor_of(ev.e.data.alias.anchor) +
                                                       "' refers to no complete anchor before it"};
          return nullptr;
        }
        attach(it->second);
        break;
      }
      default:  // stream/document start and end, no-event
        break;
    }
  }
}

bool Node::IsNull() const {
  return tree_ && tree_->nodes_[index_].kind == Tree::Kind::kNull;
}
bool Node::IsScalar() const {
  return tree_ && tree_->nodes_[index_].kind == Tree::Kind::kScalar;
}
bool Node::IsSequence() const {
  return tree_ && tree_->nodes_[index_].kind == Tree::Kind::kSequence;
}
bool Node::IsMap() const {
  return tree_ && tree_->nodes_[index_].kind == Tree::Kind::kMap;
}

const std::string& Node::Scalar() const {
  return IsScalar() ? tree_->nodes_[index_].text : kEmpty;
}
const std::string& Node::Tag() const {
  return tree_ ? tree_->nodes_[index_].tag : kEmpty;
}
yaml::Mark Node::Mark() const {
  return tree_ ? tree_->nodes_[index_].mark : yaml::Mark{};
}

std::size_t Node::size() const {
  if (IsSequence()) return tree_->nodes_[index_].children.size();
  if (IsMap()) return tree_->nodes_[index_].children.size() / 2;
  return 0;
}

Node Node::at(std::size_t i) const {
  if (!IsSequence() || i >= size()) return {};
  return Node(tree_, tree_->nodes_[index_].children[i]);
}
Node Node::key_at(std::size_t i) const {
  if (!IsMap() || i >= size()) return {};
  return Node(tree_, tree_->nodes_[index_].children[2 * i]);
}
Node Node::value_at(std::size_t i) const {
  if (!IsMap() || i >= size()) return {};
  return Node(tree_, tree_->nodes_[index_].children[2 * i + 1]);
}

Node Node::operator[](std::string_view key) const {
  for (std::size_t i = 0, n = size(); IsMap() && i < n; ++i) {
    Node k = key_at(i);
    if (k.IsScalar() && k.Scalar() == key) return value_at(i);
  }
  return {};
}

}  // namespace authbypass::yaml
