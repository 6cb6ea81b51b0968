//! `kubectl completion bash|zsh|fish`: shell completion for the verbs, their flags, the
//! resource types, and (by asking the cluster) object names and namespaces. The scripts
//! are generated from the same command definitions that parse the arguments, so they
//! never offer a flag that does not exist.

use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use minik8s_api::resource;

use crate::error::Result;
use crate::session::Io;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: CompletionArgs, io: &mut Io<'_>) -> Result<()> {
    let script = match args.shell {
        Shell::Bash => bash(),
        Shell::Zsh => zsh(),
        Shell::Fish => fish(),
    };
    io.out.write_all(script.as_bytes())?;
    Ok(())
}

/// A verb and its flags, read from the command definitions.
struct Verb {
    name: String,
    about: String,
    /// `--long` and `-s` spellings of flags that take no value.
    switches: Vec<String>,
    /// Spellings of flags that take a value.
    valued: Vec<String>,
    flags: Vec<Flag>,
}

struct Flag {
    long: Option<String>,
    short: Option<char>,
    takes_value: bool,
    help: String,
}

fn flags_of(cmd: &clap::Command) -> Vec<Flag> {
    cmd.get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set())
        .map(|a| Flag {
            long: a.get_long().map(str::to_string),
            short: a.get_short(),
            takes_value: a.get_action().takes_values()
                && a.get_num_args().is_none_or(|n| n.min_values() > 0),
            help: a.get_help().map(|h| h.to_string()).unwrap_or_default(),
        })
        .collect()
}

fn spellings(flags: &[Flag], valued: bool) -> Vec<String> {
    let mut out = Vec::new();
    for f in flags.iter().filter(|f| f.takes_value == valued) {
        if let Some(l) = &f.long {
            out.push(format!("--{l}"));
        }
        if let Some(s) = f.short {
            out.push(format!("-{s}"));
        }
    }
    out
}

fn verbs() -> (Vec<Verb>, Vec<Flag>) {
    let root = crate::command();
    let globals = flags_of(&root);
    let verbs = root
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .map(|c| {
            let flags: Vec<Flag> = flags_of(c)
                .into_iter()
                .filter(|f| !globals.iter().any(|g| g.long == f.long))
                .collect();
            Verb {
                name: c.get_name().to_string(),
                about: c.get_about().map(|a| a.to_string()).unwrap_or_default(),
                switches: spellings(&flags, false),
                valued: spellings(&flags, true),
                flags,
            }
        })
        .collect();
    (verbs, globals)
}

fn resource_words() -> String {
    let mut words: Vec<&str> = Vec::new();
    for r in resource::ALL {
        words.push(r.plural);
        words.push(r.singular);
        words.extend(r.short_names.iter().copied());
    }
    words.join(" ")
}

fn bash() -> String {
    let (verbs, globals) = verbs();
    let global_switches = spellings(&globals, false).join(" ");
    let global_valued = spellings(&globals, true).join(" ");
    let mut s = String::new();
    s.push_str("# bash completion for the MiniK8s kubectl.\n");
    s.push_str("# Load it with: source <(kubectl completion bash)\n\n");
    s.push_str("__minik8s_kubectl_names() {\n");
    s.push_str("    kubectl get \"$@\" -o name 2>/dev/null | sed 's|.*/||'\n");
    s.push_str("}\n\n");
    s.push_str("_minik8s_kubectl() {\n");
    s.push_str(
        "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n",
    );
    let _ = writeln!(
        s,
        "    local verbs=\"{}\"",
        verbs
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        s,
        "    local global_switches=\"{global_switches}\" global_valued=\"{global_valued}\""
    );
    let _ = writeln!(s, "    local types=\"{}\"", resource_words());
    s.push_str("    local switches=\"\" valued=\"\"\n");
    s.push_str("    local verb=\"\" i w skip=0\n");
    s.push_str("    local -a args=()\n");
    s.push_str("    for ((i = 1; i < COMP_CWORD; i++)); do\n");
    s.push_str("        w=\"${COMP_WORDS[i]}\"\n");
    s.push_str("        if ((skip)); then skip=0; continue; fi\n");
    s.push_str(
        "        case \" $global_valued $valued \" in *\" $w \"*) skip=1; continue ;; esac\n",
    );
    s.push_str("        case \"$w\" in\n");
    s.push_str("            -*) ;;\n");
    s.push_str("            *)\n");
    s.push_str("                if [[ -z \"$verb\" ]]; then\n");
    s.push_str("                    verb=\"$w\"\n");
    s.push_str("                    case \"$verb\" in\n");
    for v in &verbs {
        let _ = writeln!(
            s,
            "                        {}) switches=\"{}\"; valued=\"{}\" ;;",
            v.name,
            v.switches.join(" "),
            v.valued.join(" ")
        );
    }
    s.push_str("                    esac\n");
    s.push_str("                else\n");
    s.push_str("                    args+=(\"$w\")\n");
    s.push_str("                fi\n");
    s.push_str("                ;;\n");
    s.push_str("        esac\n");
    s.push_str("    done\n");
    s.push_str("    case \"$prev\" in\n");
    s.push_str("        -f|--filename|--kubeconfig)\n");
    s.push_str("            COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n");
    s.push_str("        -o|--output)\n");
    s.push_str(
        "            COMPREPLY=($(compgen -W \"wide yaml json name\" -- \"$cur\")); return ;;\n",
    );
    s.push_str("        -n|--namespace)\n");
    s.push_str("            COMPREPLY=($(compgen -W \"$(__minik8s_kubectl_names namespaces)\" -- \"$cur\")); return ;;\n");
    s.push_str("    esac\n");
    s.push_str("    if [[ -z \"$verb\" ]]; then\n");
    s.push_str("        COMPREPLY=($(compgen -W \"$verbs $global_switches $global_valued\" -- \"$cur\")); return\n");
    s.push_str("    fi\n");
    s.push_str("    if [[ \"$cur\" == -* ]]; then\n");
    s.push_str("        COMPREPLY=($(compgen -W \"$switches $valued $global_switches $global_valued\" -- \"$cur\")); return\n");
    s.push_str("    fi\n");
    s.push_str("    case \"$verb\" in\n");
    s.push_str("        get|describe|delete)\n");
    s.push_str("            if ((${#args[@]} == 0)); then\n");
    s.push_str("                COMPREPLY=($(compgen -W \"$types\" -- \"$cur\"))\n");
    s.push_str("            else\n");
    s.push_str("                COMPREPLY=($(compgen -W \"$(__minik8s_kubectl_names \"${args[0]}\")\" -- \"$cur\"))\n");
    s.push_str("            fi ;;\n");
    s.push_str("        logs)\n");
    s.push_str("            COMPREPLY=($(compgen -W \"$(__minik8s_kubectl_names pods)\" -- \"$cur\")) ;;\n");
    s.push_str("        completion)\n");
    s.push_str("            COMPREPLY=($(compgen -W \"bash zsh fish\" -- \"$cur\")) ;;\n");
    s.push_str("    esac\n");
    s.push_str("}\n\n");
    s.push_str("complete -o default -F _minik8s_kubectl kubectl\n");
    s
}

fn zsh() -> String {
    // zsh runs the bash function through its bash-compatible completion layer.
    format!(
        "#compdef kubectl\n# zsh completion for the MiniK8s kubectl.\n# Load it with: source <(kubectl completion zsh)\n\nautoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n\n{}",
        bash()
    )
}

fn fish_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn fish() -> String {
    let (verbs, globals) = verbs();
    let mut s = String::new();
    s.push_str("# fish completion for the MiniK8s kubectl.\n");
    s.push_str("# Load it with: kubectl completion fish | source\n\n");
    s.push_str("complete -c kubectl -f\n");
    s.push_str("function __minik8s_kubectl_names\n    kubectl get $argv -o name 2>/dev/null | string replace -r '.*/' ''\nend\n");
    s.push_str("function __minik8s_kubectl_type\n    set -l words (commandline -opc)\n    set -l seen 0\n    for w in $words[2..-1]\n        switch $w\n            case '-*'\n                continue\n        end\n        if test $seen -eq 1\n            echo $w\n            return\n        end\n        set seen 1\n    end\nend\n");
    for v in &verbs {
        let _ = writeln!(
            s,
            "complete -c kubectl -n '__fish_use_subcommand' -a {} -d {}",
            v.name,
            fish_quote(&v.about)
        );
    }
    let flag_line = |s: &mut String, condition: &str, f: &Flag| {
        let mut line = format!("complete -c kubectl -n {}", fish_quote(condition));
        if let Some(l) = &f.long {
            line.push_str(&format!(" -l {l}"));
        }
        if let Some(c) = f.short {
            line.push_str(&format!(" -s {c}"));
        }
        if f.takes_value {
            line.push_str(" -r");
        }
        if !f.help.is_empty() {
            line.push_str(&format!(" -d {}", fish_quote(&f.help)));
        }
        s.push_str(&line);
        s.push('\n');
    };
    for f in &globals {
        flag_line(&mut s, "true", f);
    }
    for v in &verbs {
        let condition = format!("__fish_seen_subcommand_from {}", v.name);
        for f in &v.flags {
            flag_line(&mut s, &condition, f);
        }
    }
    let _ = writeln!(
        s,
        "complete -c kubectl -n '__fish_seen_subcommand_from get describe delete; and not __minik8s_kubectl_type' -a {}",
        fish_quote(&resource_words())
    );
    s.push_str("complete -c kubectl -n '__fish_seen_subcommand_from get describe delete; and __minik8s_kubectl_type' -a '(__minik8s_kubectl_names (__minik8s_kubectl_type))'\n");
    s.push_str("complete -c kubectl -n '__fish_seen_subcommand_from logs' -a '(__minik8s_kubectl_names pods)'\n");
    s.push_str(
        "complete -c kubectl -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'\n",
    );
    s.push_str("complete -c kubectl -n '__fish_seen_subcommand_from create apply delete' -s f -l filename -r -F\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn scripts_know_the_verbs_flags_and_types() {
        let b = bash();
        for want in [
            "get describe",
            "--all-namespaces",
            "--grace-period",
            "pods",
            "complete -o default -F _minik8s_kubectl kubectl",
        ] {
            assert!(b.contains(want), "bash script lacks {want:?}");
        }
        assert!(b.contains("logs exec version"), "every verb is offered");
        assert!(zsh().contains("bashcompinit"));
        let f = fish();
        assert!(
            f.contains("-a get -d 'Display one or many resources'"),
            "{f}"
        );
        assert!(
            f.contains("__fish_seen_subcommand_from delete' -l grace-period -r"),
            "{f}"
        );
    }

    #[test]
    fn bash_script_is_valid_bash() {
        let Ok(mut child) = std::process::Command::new("bash")
            .arg("-n")
            .stdin(std::process::Stdio::piped())
            .spawn()
        else {
            return; // no bash here
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(bash().as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
}
