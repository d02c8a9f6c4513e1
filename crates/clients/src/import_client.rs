//! `sustain-registry import FILE`: reads an import file as a stream, sends its
//! households in batches over the ImportHouseholds stream, shows progress, and
//! writes the rejected rows with their reasons to a CSV beside the counts. A
//! batch is only forgotten once the server has acknowledged it, so an
//! interrupted import is finished by running the same command again: what was
//! acknowledged comes back UNCHANGED.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use sustain_platform::progress::Progress;
use sustain_proto::registry::v1 as pb;
use sustain_proto::registry::v1::review_service_client::ReviewServiceClient;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;

use crate::import_file::{self, Group};

/// Households per request by default.
pub const DEFAULT_BATCH: usize = 500;

/// Largest request by default, in encoded bytes: half the registry's default
/// limit (`limits.max_request_bytes`, 4 MiB), so that a file of large
/// households imports as one of small ones does, in smaller batches.
pub const DEFAULT_BATCH_BYTES: usize = 2 << 20;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub households: u64,
    pub accepted: u64,
    pub unchanged: u64,
    pub rejected: u64,
    pub reviews_written: u64,
}

#[derive(Debug)]
pub struct ImportOptions<'a> {
    pub file: &'a Path,
    pub server: &'a str,
    pub token: &'a str,
    pub rejected_file: PathBuf,
    pub batch_size: usize,
    /// Largest request in encoded bytes (a household larger than this alone
    /// still goes, alone).
    pub batch_bytes: usize,
    pub progress: bool,
    /// The client certificate and CA when the registry speaks mutual TLS.
    pub tls: Option<&'a sustain_platform::tls::Tls>,
}

struct Rejections {
    out: csv::Writer<std::fs::File>,
}

impl Rejections {
    fn create(path: &Path) -> anyhow::Result<Rejections> {
        let mut out =
            csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
        out.write_record(["line", "household_key", "column", "field", "reason"])?;
        Ok(Rejections { out })
    }

    fn write(&mut self, g: &Group, field: &str, reason: &str) -> anyhow::Result<()> {
        let (line, column) = g.locate(field);
        self.out.write_record([
            line.to_string().as_str(),
            g.row.external_key.as_str(),
            column.as_str(),
            field,
            reason,
        ])?;
        Ok(())
    }
}

pub async fn import(options: ImportOptions<'_>) -> anyhow::Result<ImportReport> {
    let rows = import_file::open(options.file)?;
    // The rows of the file, counted before it is sent.
    let bar = Arc::new(Progress::new(
        "rows",
        rows.total.unwrap_or_default(),
        options.progress,
    ));

    // The file is read on a blocking thread and handed over a bounded channel.
    let (group_tx, mut group_rx) =
        tokio::sync::mpsc::channel::<anyhow::Result<Group>>(4 * options.batch_size);
    let reader = tokio::task::spawn_blocking(move || {
        for g in import_file::groups(rows) {
            if group_tx.blocking_send(g).is_err() {
                break;
            }
        }
    });

    let channel = sustain_platform::tls::endpoint(options.server, options.tls)
        .context("--server")?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", options.server))?;
    let bearer: MetadataValue<_> = format!("Bearer {}", options.token)
        .parse()
        .context("--token is not a valid header value")?;
    let mut client =
        ReviewServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", bearer.clone());
            Ok(r)
        })
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);

    let rejections = Arc::new(Mutex::new(Rejections::create(&options.rejected_file)?));
    let report = Arc::new(Mutex::new(ImportReport::default()));
    let pending: Arc<Mutex<VecDeque<Vec<Group>>>> = Arc::default();
    let (request_tx, request_rx) = tokio::sync::mpsc::channel::<pb::ImportHouseholdsRequest>(2);

    let sender = {
        let (pending, rejections, report, bar) = (
            pending.clone(),
            rejections.clone(),
            report.clone(),
            bar.clone(),
        );
        let batch_size = options.batch_size.max(1);
        let batch_bytes = options.batch_bytes.max(1);
        tokio::spawn(async move {
            let mut batch: Vec<Group> = Vec::with_capacity(batch_size);
            let mut bytes = 0usize;
            let flush = |batch: &mut Vec<Group>, bytes: &mut usize| {
                *bytes = 0;
                let groups = std::mem::take(batch);
                let rows = groups.iter().map(|g| g.row.clone()).collect();
                if let Ok(mut p) = pending.lock() {
                    p.push_back(groups);
                }
                pb::ImportHouseholdsRequest { rows }
            };
            while let Some(g) = group_rx.recv().await {
                let g = g?;
                if !g.problems.is_empty() {
                    // Unreadable in the file itself: reported without asking the server.
                    let mut out = rejections.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                    for (line, column, reason) in &g.problems {
                        out.out.write_record([
                            line.to_string().as_str(),
                            &g.row.external_key,
                            column,
                            column,
                            reason,
                        ])?;
                    }
                    let mut r = report.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                    r.households += 1;
                    r.rejected += 1;
                    bar.inc((g.member_lines.len() + g.review_lines.len()) as u64);
                    continue;
                }
                // A repeated field's entry: its bytes, a tag and a length.
                let size = prost::Message::encoded_len(&g.row) + 8;
                if !batch.is_empty()
                    && bytes + size > batch_bytes
                    && request_tx
                        .send(flush(&mut batch, &mut bytes))
                        .await
                        .is_err()
                {
                    return Ok(());
                }
                batch.push(g);
                bytes += size;
                if batch.len() >= batch_size
                    && request_tx
                        .send(flush(&mut batch, &mut bytes))
                        .await
                        .is_err()
                {
                    return Ok(());
                }
            }
            if !batch.is_empty() {
                let _ = request_tx.send(flush(&mut batch, &mut bytes)).await;
            }
            anyhow::Ok(())
        })
    };

    let mut responses = client
        .import_households(ReceiverStream::new(request_rx))
        .await
        .context("starting the import")?
        .into_inner();
    let mut stopped = None;
    loop {
        let response = match responses.message().await {
            Ok(Some(response)) => response,
            Ok(None) => break,
            Err(status) => {
                stopped = Some(format!(
                    "the registry ended the import: {} ({:?})",
                    status.message(),
                    status.code()
                ));
                break;
            }
        };
        let groups = pending
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .pop_front()
            .context("the server acknowledged a batch that was not sent")?;
        if response.results.len() != groups.len() {
            stopped = Some(format!(
                "the registry answered a batch of {} households with {} results",
                groups.len(),
                response.results.len()
            ));
            break;
        }
        let mut r = report.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let mut out = rejections.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        for (g, result) in groups.iter().zip(&response.results) {
            r.households += 1;
            r.reviews_written += result.reviews_written.max(0) as u64;
            match pb::ImportOutcome::try_from(result.outcome) {
                Ok(pb::ImportOutcome::Accepted) => r.accepted += 1,
                Ok(pb::ImportOutcome::Unchanged) => r.unchanged += 1,
                _ => {
                    r.rejected += 1;
                    for v in &result.violations {
                        out.write(g, &v.field, &v.description)?;
                    }
                }
            }
            bar.inc((g.member_lines.len() + g.review_lines.len()) as u64);
        }
        bar.set_message(format!(
            "{} accepted, {} unchanged, {} rejected",
            r.accepted, r.unchanged, r.rejected
        ));
    }
    rejections
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .out
        .flush()?;
    bar.finish();
    let report = report
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    // Every batch sent must have been answered: what was not is not written.
    let unanswered: Vec<Vec<Group>> = pending
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .drain(..)
        .collect();
    if stopped.is_none() && !unanswered.is_empty() {
        stopped = Some(format!(
            "the registry ended the stream with {} batch(es) unanswered",
            unanswered.len()
        ));
    }
    if let Some(why) = stopped {
        drop(responses);
        sender.abort();
        reader.abort();
        let first = unanswered
            .first()
            .and_then(|b| b.first())
            .map(|g| g.first_line);
        return Err(Incomplete {
            why,
            done: report,
            first_unwritten_line: first,
        }
        .into());
    }
    sender.await.context("reading the file")??;
    reader.await.context("reading the file")?;
    Ok(report)
}

/// An import that stopped before the end of its file: what was written
/// (every batch the registry answered) and from where it was not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incomplete {
    pub why: String,
    /// What the answered batches did.
    pub done: ImportReport,
    /// The file line of the first household not answered, when known.
    pub first_unwritten_line: Option<usize>,
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.done;
        write!(
            f,
            "import incomplete: {}. Written before it stopped: {} households ({} accepted, {} unchanged, {} rejected; {} reviews)",
            self.why, d.households, d.accepted, d.unchanged, d.rejected, d.reviews_written
        )?;
        if let Some(line) = self.first_unwritten_line {
            write!(f, "; nothing from line {line} on is written")?;
        }
        write!(
            f,
            ". Run the same command again to finish: what was written comes back unchanged"
        )
    }
}

impl std::error::Error for Incomplete {}
