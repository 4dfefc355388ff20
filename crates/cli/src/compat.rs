//! MPI launchers spell the rank count `-np N` (and MPICH's the binding `-bind-to KIND`),
//! single-dash long flags that clap does not parse. They are rewritten to `--np` and
//! `--bind-to` before parsing, but only among the options of `run`: the program's own
//! arguments are never touched.

use std::ffi::OsString;

use clap::Args;

/// Whether `arg` is an option of `run` whose value is the next argument (asked of the
/// options' definition, so that no option's value is ever taken for the program).
fn takes_separate_value(arg: &str) -> bool {
    let run = crate::args::RunArgs::augment_args(clap::Command::new("run"));
    let named = |a: &clap::Arg| match arg.strip_prefix("--") {
        Some(long) => a.get_long() == Some(long),
        None => {
            let mut chars = arg.chars();
            chars.next() == Some('-')
                && a.get_short().is_some_and(|c| chars.next() == Some(c))
                && chars.next().is_none()
        }
    };
    run.get_arguments()
        .any(|a| !a.is_positional() && a.get_action().takes_values() && named(a))
}

/// mpirun's single-dash long options and the names they have here.
const SINGLE_DASH: &[(&str, &str)] = &[("-np", "--np"), ("-bind-to", "--bind-to")];

/// Where the options of `mpicr run` start in `argv`, if the subcommand is `run`.
pub(crate) fn run_args_start(argv: &[OsString]) -> Option<usize> {
    let index = argv
        .iter()
        .skip(1)
        .position(|a| !a.to_string_lossy().starts_with('-'))?
        + 1;
    (argv[index] == "run").then_some(index + 1)
}

/// Replaces `-np` by `--np` (and the other [`SINGLE_DASH`] options) in the options that `start(argv)` says begin the run options.
pub(crate) fn rewrite_np(
    mut argv: Vec<OsString>,
    start: impl Fn(&[OsString]) -> Option<usize>,
) -> Vec<OsString> {
    let Some(mut i) = start(&argv) else {
        return argv;
    };
    while i < argv.len() {
        let arg = argv[i].to_string_lossy().into_owned();
        if arg == "--" || !arg.starts_with('-') {
            break;
        }
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (arg.as_str(), None),
        };
        if let Some((_, long)) = SINGLE_DASH.iter().find(|(single, _)| *single == name) {
            argv[i] = match value {
                Some(value) => format!("{long}={value}").into(),
                None => (*long).into(),
            };
            if value.is_none() {
                i += 1;
            }
        } else if value.is_none() && takes_separate_value(name) {
            i += 1;
        }
        i += 1;
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(args: &[&str], start: impl Fn(&[OsString]) -> Option<usize>) -> Vec<String> {
        let argv = args.iter().map(OsString::from).collect();
        rewrite_np(argv, start)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn only_run_options_are_rewritten() {
        assert_eq!(
            rewrite(&["mpicr", "run", "-np", "2", "prog", "-np"], run_args_start),
            ["mpicr", "run", "--np", "2", "prog", "-np"]
        );
        assert_eq!(
            rewrite(
                &[
                    "mpicr",
                    "run",
                    "--job-name",
                    "-np",
                    "-np=3",
                    "--",
                    "p",
                    "-np"
                ],
                run_args_start
            ),
            [
                "mpicr",
                "run",
                "--job-name",
                "-np",
                "--np=3",
                "--",
                "p",
                "-np"
            ]
        );
        assert_eq!(
            rewrite(&["mpicr", "status", "-np"], run_args_start),
            ["mpicr", "status", "-np"]
        );
        assert_eq!(
            rewrite(&["mpirun", "-np", "4", "a"], |_| Some(1)),
            ["mpirun", "--np", "4", "a"]
        );
        assert_eq!(
            rewrite(
                &[
                    "mpirun",
                    "--compress",
                    "zstd",
                    "--full-every",
                    "4",
                    "-np",
                    "2",
                    "a"
                ],
                |_| Some(1)
            ),
            [
                "mpirun",
                "--compress",
                "zstd",
                "--full-every",
                "4",
                "--np",
                "2",
                "a"
            ]
        );
    }

    #[test]
    fn every_option_value_is_skipped_and_bind_to_is_rewritten() {
        assert_eq!(
            rewrite(
                &[
                    "mpirun",
                    "--hosts",
                    "a,b",
                    "-bind-to",
                    "core",
                    "--compress",
                    "zstd",
                    "-np",
                    "2",
                    "prog",
                    "-np",
                    "-bind-to"
                ],
                |_| Some(1)
            ),
            [
                "mpirun",
                "--hosts",
                "a,b",
                "--bind-to",
                "core",
                "--compress",
                "zstd",
                "--np",
                "2",
                "prog",
                "-np",
                "-bind-to"
            ]
        );
        assert_eq!(
            rewrite(&["mpirun", "-bind-to=hwthread", "-n", "2", "p"], |_| Some(
                1
            )),
            ["mpirun", "--bind-to=hwthread", "-n", "2", "p"]
        );
    }
}
