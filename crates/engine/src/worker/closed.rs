//! The closed model: virtual users, each sending, waiting, thinking.

use super::*;

/// How often the closed model re-reads its user count.
const VU_TICK: Duration = Duration::from_millis(10);

/// Closed model: keeps this worker's share of the current user count
/// running. Each user sends, waits for the response, thinks, and repeats.
pub(super) async fn closed_loop<C: Connector + 'static>(
    sh: &Rc<Shared<C>>,
    profile: &Profile,
    think: Duration,
    cfg: &WorkerConfig,
    running_count: &Rc<Cell<usize>>,
) -> Duration {
    let duration = profile.duration();
    let target = Rc::new(Cell::new(0usize));
    let running: Rc<RefCell<Vec<bool>>> = Rc::default();
    loop {
        let t = Instant::now().saturating_duration_since(sh.start);
        if sh.end.is_cancelled() || duration.is_some_and(|d| t >= d) || sh.budget.get() == Some(0) {
            break;
        }
        // A small epsilon keeps 49.9999999 (float ramps) from flooring to 49.
        let total = (profile.value_at(t) + 1e-9).floor() as u64;
        let mine = cfg.segment.share(total, cfg.index, cfg.workers) as usize;
        target.set(mine);
        if running.borrow().len() < mine {
            running.borrow_mut().resize(mine, false);
        }
        for i in 0..mine {
            if !running.borrow()[i] {
                running.borrow_mut()[i] = true;
                let guard = AliveGuard::new(sh);
                // Unique across workers and segments: `sh.worker` and
                // `sh.workers` place this worker among all of them.
                let vu = (i * sh.workers + sh.worker) as u64;
                tokio::task::spawn_local(virtual_user(
                    guard,
                    i,
                    vu,
                    think,
                    target.clone(),
                    running.clone(),
                    running_count.clone(),
                ));
            }
        }
        tokio::select! {
            biased;
            _ = sh.end.cancelled() => break,
            _ = sleep(VU_TICK) => {}
        }
    }
    let t = Instant::now().saturating_duration_since(sh.start);
    match duration {
        Some(d) if !sh.end.is_cancelled() && sh.budget.get() != Some(0) => d.min(t),
        _ => t,
    }
}

pub(super) async fn virtual_user<C: Connector>(
    guard: AliveGuard<C>,
    index: usize,
    vu: u64,
    think: Duration,
    target: Rc<Cell<usize>>,
    running: Rc<RefCell<Vec<bool>>>,
    running_count: Rc<Cell<usize>>,
) {
    let sh = &guard.0;
    running_count.set(running_count.get() + 1);
    let mut session = sh.session(vu);
    while index < target.get() && !sh.end.is_cancelled() {
        sh.run_flow(&mut session, None, true).await;
        if !think.is_zero() {
            tokio::select! {
                biased;
                _ = sh.end.cancelled() => break,
                _ = sleep(think) => {}
            }
        }
    }
    running_count.set(running_count.get() - 1);
    if let Some(r) = running.borrow_mut().get_mut(index) {
        *r = false;
    }
}
