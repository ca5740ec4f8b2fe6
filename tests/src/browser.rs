//! A real headless Chromium, driven over WebDriver (`chromedriver`, Debian's
//! `chromium-driver`), for the console's tests. Each browser has its own driver
//! process, port and profile directory, all gone when it is dropped.
//!
//! A step that fails saves a screenshot under `target/browser-failures/` and names it
//! in the panic message: a browser test that fails in CI shows what the page showed.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

/// What a test step returns: the failure's description.
pub type Step<T = ()> = Result<T, String>;

/// How long a step waits for the page to show what it expects.
const PATIENCE: Duration = Duration::from_secs(20);

/// A headless Chromium session.
#[allow(missing_debug_implementations)] // fantoccini's client has no Debug
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    name: String,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound").port()
}

impl Browser {
    /// Starts chromedriver and a browser in a window of `width` x `height`; `name`
    /// names the screenshot of a failure.
    pub async fn start(name: &str, width: u32, height: u32) -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            // Its own process group: the browser it starts goes with it (see `Drop`).
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver did not start ({e}): the console's tests need \
                     `apt-get install chromium chromium-driver` (.ci/run installs them)"
                )
            });
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({"args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.path().display()),
            ]}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last = String::new();
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Self {
                        client,
                        driver,
                        _profile: profile,
                        name: name.to_owned(),
                    };
                }
                Err(error) => last = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no WebDriver session from chromedriver on port {port}: {last}");
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) -> Step {
        self.client
            .goto(url)
            .await
            .map_err(|e| format!("cannot open {url}: {e}"))
    }

    /// Waits until the element `css` exists and its text satisfies `expected`
    /// (described by `what`); its text.
    pub async fn wait_text(
        &self,
        css: &str,
        what: &str,
        expected: impl Fn(&str) -> bool,
    ) -> Step<String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut seen = None;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if expected(&text) {
                    return Ok(text);
                }
                seen = Some(text);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(match seen {
                    Some(text) => format!("`{css}` shows {text:?}, not {what}"),
                    None => format!("no `{css}` on the page (waiting for {what})"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the element `css`, then clicks it.
    pub async fn click(&self, css: &str) -> Step {
        self.click_on(Locator::Css(css), css).await
    }

    /// Waits for a link whose text is `text`, then clicks it.
    pub async fn click_link(&self, text: &str) -> Step {
        self.click_on(Locator::LinkText(text), text).await
    }

    /// Clicks what `locator` finds, trying again while the page re-renders (an
    /// element found just before it is replaced is stale by the click).
    async fn click_on(&self, locator: Locator<'_>, what: &str) -> Step {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let error = match self.client.find(locator).await {
                Ok(element) => match element.click().await {
                    Ok(()) => return Ok(()),
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() > deadline {
                return Err(format!("cannot click {what:?}: {error}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the field `css`, replacing what it held.
    pub async fn type_into(&self, css: &str, text: &str) -> Step {
        self.wait_text(css, "a field", |_| true).await?;
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .map_err(|e| format!("`{css}`: {e}"))?;
        field
            .clear()
            .await
            .map_err(|e| format!("cannot clear `{css}`: {e}"))?;
        field
            .send_keys(text)
            .await
            .map_err(|e| format!("cannot type into `{css}`: {e}"))
    }

    /// The attribute `name` of the element `css`.
    pub async fn attribute(&self, css: &str, name: &str) -> Step<Option<String>> {
        self.wait_text(css, "an element", |_| true).await?;
        self.client
            .find(Locator::Css(css))
            .await
            .map_err(|e| format!("`{css}`: {e}"))?
            .attr(name)
            .await
            .map_err(|e| format!("`{css}`[{name}]: {e}"))
    }

    /// Saves what the page shows as a PNG at `path`.
    pub async fn screenshot(&self, path: &std::path::Path) -> Step {
        let png = self
            .client
            .screenshot()
            .await
            .map_err(|e| format!("no screenshot: {e}"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, png).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Ends the session; a failed `outcome` panics with its screenshot's path.
    pub async fn conclude(self, outcome: Step) {
        if let Err(failure) = outcome {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/browser-failures")
                .join(format!("{}.png", self.name));
            let saved = match self.screenshot(&path).await {
                Ok(()) => format!("screenshot: {}", path.display()),
                Err(e) => format!("no screenshot ({e})"),
            };
            let _ = self.client.clone().close().await;
            panic!("{failure}; {saved}");
        }
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leaves its browser behind when killed alone: kill the group.
        // `--` first: procps' `kill -KILL -1xxxx` reads the group as options and
        // signals every process (-1) once pids wrap into five digits starting with 1.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
