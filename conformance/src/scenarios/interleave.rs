//! Orderings a runtime produces around one attachment, each judged by its
//! end state: ADD/DEL of the same container ID alternated for many rounds
//! (present and reachable after a final ADD, fully absent after a final
//! DEL), DEL before any ADD (succeeds, creates nothing), DEL twice, CHECK
//! after DEL (a clear error, never a crash), GC racing a DEL of the same
//! attachment (both succeed, nothing left) and STATUS racing ADD (never
//! fails).

use cni::CniVersion;

use super::bandwidth::{BURST, RATE};
use super::concurrency::kernel_and_state_leftovers;
use super::{
    bandwidth_caps, expect_no_reply_from, expect_reply, full_chain, nothing_left, port_mappings,
    sock, Attached, CheckError, Checked, Ctx, MainPlugin, Net, Recorder,
};
use crate::topology::NODE_V4;

const PORT: u16 = 18300;
/// ADD/DEL rounds of the same container ID.
const ROUNDS: usize = 5;
/// STATUS calls made while one ADD runs.
const STATUS_CALLS: usize = 5;

fn absent(net: &Net) -> Checked<Option<String>> {
    expect_no_reply_from(net.request(net.host(), false, sock(NODE_V4, PORT)), "pod-")?;
    nothing_left(net, Some(&net.dir("tuning")))?;
    kernel_and_state_leftovers(net)
}

/// The text of a plugin that crashed rather than answered.
fn crashed(text: &str) -> bool {
    text.contains("panicked") || text.contains("signal")
}

fn both(a: Checked<()>, b: Checked<()>) -> Checked<Option<String>> {
    match (a, b) {
        (Ok(()), Ok(())) => Ok(None),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

pub(super) fn run(ctx: &Ctx, r: &mut Recorder, version: CniVersion, main: MainPlugin) {
    let net = match Net::new(ctx, "il", version, main) {
        Ok(n) => n,
        Err(e) => return r.setup_failed(e),
    };
    let chain = full_chain(&net);
    let mut caps = port_mappings(&[(PORT, 80, "tcp", None)]);
    caps.extend(bandwidth_caps(RATE, BURST));
    let mut p: Attached = match net.pod("il0", 0, &chain, caps) {
        Ok(p) => p,
        Err(e) => return r.setup_failed(e),
    };
    r.check("del-before-add-succeeds", || net.del(&p).map(|()| None));
    r.check("del-before-add-creates-nothing", || absent(&net));
    let server = match ctx.tools.serve(&p.pod.netns, &[80], &[], "pod-0", 60) {
        Ok(s) => s,
        Err(e) => return r.setup_failed(e),
    };
    r.check(&format!("add-del-{ROUNDS}-rounds"), || {
        add_del_rounds(&net, &mut p)
    });
    r.check("absent-after-final-del", || absent(&net));
    r.check("present-after-final-add", || {
        present_after_add(&net, &mut p)
    });
    r.check("del-twice", || {
        net.del(&p)?;
        net.del(&p)?;
        absent(&net)
    });
    if version.allows_check() {
        r.check("check-after-del-is-a-clear-error", || {
            check_after_del(&net, &p)
        });
    }
    if version >= CniVersion::V1_1_0 {
        r.check("gc-racing-del", || gc_racing_del(&net, &mut p));
        r.check("status-racing-add", || status_racing_add(&net, &mut p));
    }
    drop(server);
}

/// [`ROUNDS`] ADD then DEL of the same container ID.
fn add_del_rounds(net: &Net, p: &mut Attached) -> Checked<Option<String>> {
    for round in 0..ROUNDS {
        net.add(p).map_err(|e| e.within(format!("round {round}")))?;
        net.del(p).map_err(|e| e.within(format!("round {round}")))?;
    }
    Ok(None)
}

/// A final ADD: the hostPort answers, CHECK passes, and the leftover check
/// sees the live attachment.
fn present_after_add(net: &Net, p: &mut Attached) -> Checked<Option<String>> {
    net.add(p)?;
    expect_reply(
        net.request(net.host(), false, sock(NODE_V4, PORT)),
        "pod-0 tcp/80",
    )?;
    net.check(p)?;
    // The leak detector must see a live attachment, or its passes mean nothing.
    match kernel_and_state_leftovers(net) {
        Err(_) => Ok(None),
        Ok(_) => Err(CheckError::unexpected(
            "the leftover check sees nothing of a live attachment",
        )),
    }
}

/// CHECK after DEL fails with a clear error (its text is the note).
fn check_after_del(net: &Net, p: &Attached) -> Checked<Option<String>> {
    match net.check(p) {
        Ok(_) => Err(CheckError::unexpected("CHECK after DEL succeeded")),
        Err(e) if crashed(&e.to_string()) => Err(CheckError::unexpected(format!(
            "CHECK after DEL crashed: {e}"
        ))),
        Err(e) => Ok(Some(e.to_string())),
    }
}

/// GC with no valid attachment while DEL of the same attachment runs.
fn gc_racing_del(net: &Net, p: &mut Attached) -> Checked<Option<String>> {
    net.add(p)?;
    let p = &*p;
    let (gc, del) = std::thread::scope(|s| {
        let gc = s.spawn(|| {
            net.runtime
                .gc_network_list(&p.list, &[])
                .map(|_| ())
                .map_err(CheckError::runtime("GC"))
        });
        let del = s.spawn(|| net.del(p));
        (
            gc.join()
                .unwrap_or_else(|_| Err(CheckError::unexpected("GC thread panicked"))),
            del.join()
                .unwrap_or_else(|_| Err(CheckError::unexpected("DEL thread panicked"))),
        )
    });
    both(gc, del)?;
    absent(net)
}

/// STATUS calls while an ADD runs; then DEL leaves nothing.
fn status_racing_add(net: &Net, p: &mut Attached) -> Checked<Option<String>> {
    let list = p.list.clone();
    let (add, status) = std::thread::scope(|s| {
        let status = s.spawn(|| {
            (0..STATUS_CALLS).try_for_each(|i| {
                net.runtime
                    .status_network_list(&list)
                    .map(|_| ())
                    .map_err(|e| CheckError::runtime("STATUS")(e).within(format!("call #{i}")))
            })
        });
        let add = net.add(p).map(|_| ());
        (
            add,
            status
                .join()
                .unwrap_or_else(|_| Err(CheckError::unexpected("STATUS thread panicked"))),
        )
    });
    both(add, status)?;
    net.del(p)?;
    absent(net)
}
