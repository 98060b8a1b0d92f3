/**
 * The page: signing in (by name on the local stack, with a pasted token on a deployed one), the room
 * list, the conversation and the composer. Everything a person uses is a labelled control or a
 * landmark, so tests find it by role and label as people do.
 */
import { render } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { ChatSession, type ConnectionState, type Room } from "./chat";
import { ROOM_ID_PATTERN, tokenClaims, USER_ID_PATTERN } from "./protocol";

interface Config {
  /** The stage's WebSocket URL. */
  url: string;
  /** "local": sign in with a name (the local stack's /local/token); "token": paste a token. */
  signIn: "local" | "token";
  /** How often the page pings (default 4 minutes, inside API Gateway's 10-minute idle timeout). */
  pingSeconds?: number;
}

const TOKEN_KEY = "chat.token";
const ACTIVE_KEY = "chat.active";

async function loadConfig(): Promise<Config> {
  const res = await fetch("config.json", { cache: "no-store" });
  if (!res.ok) throw new Error(`config.json answered ${res.status}`);
  const raw = (await res.json()) as Partial<Config>;
  if (typeof raw.url !== "string") throw new Error("config.json has no url");
  return {
    url: raw.url,
    signIn: raw.signIn === "local" ? "local" : "token",
    ...(typeof raw.pingSeconds === "number" && raw.pingSeconds > 0 ? { pingSeconds: raw.pingSeconds } : {}),
  };
}

async function localToken(name: string): Promise<string> {
  const res = await fetch("local/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name }),
  });
  const body = (await res.json().catch(() => ({}))) as { token?: string; error?: string };
  if (!res.ok || !body.token) throw new Error(body.error ?? `The sign-in answered ${res.status}.`);
  return body.token;
}

/** A token in the URL fragment (`#token=…`), taken once and removed from the address bar. */
function tokenFromFragment(): string | undefined {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!match?.[1]) return undefined;
  history.replaceState(null, "", location.pathname + location.search);
  return decodeURIComponent(match[1]);
}

function App() {
  const [config, setConfig] = useState<Config>();
  const [problem, setProblem] = useState<string>();
  const [session, setSession] = useState<ChatSession>();

  const start = (cfg: Config, token: string) => {
    const s = new ChatSession({
      url: cfg.url,
      token,
      storage: sessionStorage,
      ...(cfg.pingSeconds ? { pingIntervalMs: cfg.pingSeconds * 1000 } : {}),
      ...(cfg.signIn === "local"
        ? {
            renewToken: async () => {
              const fresh = await localToken(tokenClaims(token)?.sub ?? "");
              sessionStorage.setItem(TOKEN_KEY, fresh);
              return fresh;
            },
          }
        : {}),
    });
    sessionStorage.setItem(TOKEN_KEY, token);
    setSession(s);
  };

  useEffect(() => {
    loadConfig().then(
      (cfg) => {
        setConfig(cfg);
        const token = tokenFromFragment() ?? sessionStorage.getItem(TOKEN_KEY) ?? undefined;
        const claims = token ? tokenClaims(token) : undefined;
        if (token && claims && (cfg.signIn === "local" || claims.exp * 1000 > Date.now())) {
          try {
            start(cfg, token);
          } catch (error) {
            setProblem(error instanceof Error ? error.message : String(error));
          }
        }
      },
      (error: unknown) => setProblem(`The page could not load its settings: ${String(error)}`),
    );
  }, []);

  if (!config) {
    return (
      <main>
        <p role="status">{problem ?? "Loading…"}</p>
      </main>
    );
  }
  if (!session) {
    return (
      <SignIn
        config={config}
        problem={problem}
        onToken={(token) => {
          try {
            setProblem(undefined);
            start(config, token);
          } catch (error) {
            setProblem(error instanceof Error ? error.message : String(error));
          }
        }}
        onProblem={setProblem}
      />
    );
  }
  return (
    <Chat
      session={session}
      onSignOut={() => {
        session.close();
        sessionStorage.removeItem(TOKEN_KEY);
        sessionStorage.removeItem(ACTIVE_KEY);
        setSession(undefined);
      }}
    />
  );
}

function SignIn(props: {
  config: Config;
  problem: string | undefined;
  onToken: (token: string) => void;
  onProblem: (p: string | undefined) => void;
}) {
  const [value, setValue] = useState("");
  const [busy, setBusy] = useState(false);
  const local = props.config.signIn === "local";
  const submit = async (e: Event) => {
    e.preventDefault();
    const v = value.trim();
    if (local) {
      if (!USER_ID_PATTERN.test(v)) {
        props.onProblem("A name is 1 to 64 letters, digits or the characters _ . @ - (no spaces).");
        return;
      }
      setBusy(true);
      try {
        props.onToken(await localToken(v));
      } catch (error) {
        props.onProblem(error instanceof Error ? error.message : String(error));
      } finally {
        setBusy(false);
      }
    } else {
      const claims = tokenClaims(v);
      if (!claims)
        return props.onProblem("That is not a token: paste the whole line npm run token:aws printed.");
      if (claims.exp * 1000 <= Date.now()) return props.onProblem("That token has expired; mint a new one.");
      props.onToken(v);
    }
  };
  return (
    <main class="sign-in">
      <h1>Chat</h1>
      <form onSubmit={submit}>
        <label for="sign-in-field">{local ? "Name" : "Token"}</label>
        <input
          id="sign-in-field"
          name={local ? "name" : "token"}
          autocomplete={local ? "username" : "off"}
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          required
        />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
      {!local && (
        <p class="hint">
          Mint a token with <code>npm run token:aws -- --secret-arn &lt;JwtSecretArn&gt; &lt;userId&gt;</code>
          , or open this page with <code>#token=…</code> after its address.
        </p>
      )}
      <p role="alert" class="problem">
        {props.problem ?? ""}
      </p>
    </main>
  );
}

const STATE_TEXT: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  expired: "Your sign-in has expired: sign out and sign in again.",
};

function useSession(session: ChatSession): void {
  const [, setVersion] = useState(0);
  useEffect(() => session.subscribe(() => setVersion((n) => n + 1)), [session]);
}

function Chat({ session, onSignOut }: { session: ChatSession; onSignOut: () => void }) {
  useSession(session);
  // The room shown before a reload is shown again once the server lists it.
  useEffect(() => {
    const wanted = sessionStorage.getItem(ACTIVE_KEY);
    if (wanted && !session.active && session.rooms.has(wanted)) session.select(wanted);
  });
  useEffect(() => {
    if (session.active) sessionStorage.setItem(ACTIVE_KEY, session.active);
  }, [session.active]);
  const rooms = [...session.rooms.values()].sort((a, b) => session.title(a).localeCompare(session.title(b)));
  const active = session.active ? session.rooms.get(session.active) : undefined;
  return (
    <div class="app">
      <header class="top">
        <h1>Chat</h1>
        <p role="status" class={`state ${session.state}`}>
          {STATE_TEXT[session.state]}
        </p>
        <p class="me">
          Signed in as <strong>{session.userName}</strong>
        </p>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <nav aria-label="Rooms" class="side">
        <h2>Rooms</h2>
        {rooms.length === 0 ? (
          <p class="hint">No rooms yet: join one below.</p>
        ) : (
          <ul class="rooms">
            {rooms.map((room) => {
              const unread = room.id === session.active ? 0 : session.unread(room);
              return (
                <li key={room.id}>
                  <button
                    type="button"
                    aria-current={room.id === session.active ? "true" : undefined}
                    onClick={() => session.select(room.id)}
                  >
                    <span class="room-name">{session.title(room)}</span>
                    {room.kind === "private" && <span class="kind"> (private)</span>}
                    {unread > 0 && <span class="unread">{unread} unread</span>}
                  </button>
                </li>
              );
            })}
          </ul>
        )}
        <OneField
          label="Room"
          button="Join"
          check={(v) =>
            ROOM_ID_PATTERN.test(v) ? undefined : "A room name is 1 to 64 letters, digits or _ . : -"
          }
          onSubmit={(v) => session.join(v)}
        />
        <OneField
          label="New private room"
          button="Create"
          check={(v) =>
            ROOM_ID_PATTERN.test(v) ? undefined : "A room name is 1 to 64 letters, digits or _ . : -"
          }
          onSubmit={(v) => session.createPrivate(v, [])}
        />
        <OneField
          label="Direct message to"
          button="Open"
          check={(v) =>
            !USER_ID_PATTERN.test(v)
              ? "A user name is 1 to 64 letters, digits or _ . @ -"
              : v === session.userId
                ? "That is you."
                : undefined
          }
          onSubmit={(v) => session.openDirectWith(v)}
        />
      </nav>
      <main class="room">
        {active ? (
          <Conversation session={session} room={active} />
        ) : (
          <p class="hint">Join a room, or open a direct message, to start.</p>
        )}
        <p role="alert" class="notice">
          {session.notice?.text ?? ""}
        </p>
      </main>
    </div>
  );
}

function OneField(props: {
  label: string;
  button: string;
  check: (value: string) => string | undefined;
  onSubmit: (value: string) => void;
}) {
  const [value, setValue] = useState("");
  const [problem, setProblem] = useState<string>();
  const id = `f-${props.label.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  return (
    <form
      class="one-field"
      onSubmit={(e) => {
        e.preventDefault();
        const v = value.trim();
        const p = props.check(v);
        setProblem(p);
        if (p) return;
        props.onSubmit(v);
        setValue("");
      }}
    >
      <label for={id}>{props.label}</label>
      <div class="row">
        <input
          id={id}
          value={value}
          aria-describedby={problem ? `${id}-problem` : undefined}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          required
        />
        <button type="submit">{props.button}</button>
      </div>
      {problem && (
        <p id={`${id}-problem`} class="problem">
          {problem}
        </p>
      )}
    </form>
  );
}

function Conversation({ session, room }: { session: ChatSession; room: Room }) {
  const log = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  const lastHeight = useRef(0);
  const lastRoom = useRef<string | undefined>(undefined);
  const [text, setText] = useState("");
  const messages = session.messagesOf(room);
  const pending = session.pendingOf(room.id);
  const oldest = messages[0]?.seq ?? 0;
  const oldestBefore = useRef(0);
  const typing = session.typingIn(room);

  // Stay at the bottom while there; keep the view still when older messages come in above it.
  useLayoutEffect(() => {
    const el = log.current;
    if (!el) return;
    if (lastRoom.current !== room.id) {
      lastRoom.current = room.id;
      pinned.current = true;
    }
    if (pinned.current) el.scrollTop = el.scrollHeight;
    else if (oldest < oldestBefore.current && oldestBefore.current !== 0) {
      el.scrollTop += el.scrollHeight - lastHeight.current;
    }
    lastHeight.current = el.scrollHeight;
    oldestBefore.current = oldest;
  });

  useEffect(() => {
    if (document.visibilityState === "visible") session.markViewed(room.id);
  });

  const onScroll = () => {
    const el = log.current;
    if (!el) return;
    pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 30;
    lastHeight.current = el.scrollHeight;
    if (el.scrollTop < 80) session.loadOlder(room.id);
  };

  const send = (e: Event) => {
    e.preventDefault();
    if (text.trim() === "") return;
    session.sendMessage(room.id, text);
    setText("");
    pinned.current = true;
  };

  const online = [...room.online.values()];
  return (
    <section class="conversation" aria-labelledby="room-title">
      <header class="room-head">
        <h2 id="room-title">{session.title(room)}</h2>
        {online.length > 0 && <p class="online">Online: {online.join(", ")}</p>}
        {room.kind === "private" && (
          <OneField
            label="Invite user"
            button="Invite"
            check={(v) =>
              USER_ID_PATTERN.test(v) ? undefined : "A user name is 1 to 64 letters, digits or _ . @ -"
            }
            onSubmit={(v) => session.invite(room.id, v)}
          />
        )}
        <button type="button" class="leave" onClick={() => session.leave(room.id)}>
          Leave room
        </button>
      </header>
      <div
        class="log"
        role="log"
        aria-label={`Messages in ${session.title(room)}`}
        ref={log}
        onScroll={onScroll}
        // biome-ignore lint/a11y/noNoninteractiveTabindex: the log scrolls; keyboard users reach it to scroll
        tabIndex={0}
      >
        {room.loaded && room.hasOlder && (
          <button type="button" class="older" onClick={() => session.loadOlder(room.id)}>
            Load older messages
          </button>
        )}
        {room.loaded && !room.hasOlder && messages.length > 0 && (
          <p class="start">The start of {session.title(room)}</p>
        )}
        <ol class="messages">
          {messages.map((m) => (
            <li key={m.seq} class={m.senderId === session.userId ? "mine" : undefined} data-seq={m.seq}>
              <span class="sender">{m.senderName ?? m.senderId}</span>{" "}
              <time dateTime={m.sentAt}>{formatTime(m.sentAt)}</time>
              <p class="text">{m.text}</p>
            </li>
          ))}
          {pending.map((p) => (
            <li key={p.clientMsgId} class={`mine pending ${p.state}`}>
              <span class="sender">{session.userName}</span>{" "}
              <span class="pending-state">
                {p.state === "failed" ? `Not sent: ${p.error ?? ""}` : "Sending…"}
              </span>
              <p class="text">{p.text}</p>
              {p.state === "failed" && (
                <button type="button" onClick={() => session.discard(p.clientMsgId)}>
                  Discard
                </button>
              )}
            </li>
          ))}
        </ol>
      </div>
      <p class="typing" aria-live="polite">
        {typing.length === 1
          ? `${typing[0]} is typing…`
          : typing.length > 1
            ? `${typing.slice(0, -1).join(", ")} and ${typing[typing.length - 1]} are typing…`
            : ""}
      </p>
      <form class="composer" onSubmit={send}>
        <label for="message-field">Message</label>
        <div class="row">
          <input
            id="message-field"
            autocomplete="off"
            value={text}
            onInput={(e) => {
              setText((e.target as HTMLInputElement).value);
              session.typing(room.id);
            }}
          />
          <button type="submit">Send</button>
        </div>
      </form>
    </section>
  );
}

function formatTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

const root = document.getElementById("app");
if (root) render(<App />, root);
