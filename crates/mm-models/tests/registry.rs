//! The registry: every kind's spec builds the model it describes (its parameter count computed
//! without building it), reads back from the model and from text settings, and serialises as a
//! flat object tagged by its kind.

use mm_data::Vocab;
use mm_models::{Spec, SpecError};
use rand::SeedableRng;

#[test]
fn every_spec_builds_its_model_and_reads_back_from_it() {
    let vocab = Vocab::from_words(&["abcdefghijklmnopqrstuvwxyz"]);
    let all = Spec::all();
    assert_eq!(Spec::names().len(), all.len());
    for spec in all {
        let json = serde_json::to_string(&spec).unwrap();
        assert!(json.starts_with(&format!("{{\"kind\":\"{}\"", spec.kind())), "{json}");
        assert_eq!(serde_json::from_str::<Spec>(&json).unwrap(), spec);
        let text = |k: &str| spec.setting(k);
        assert_eq!(Spec::parse(spec.kind(), text, true).unwrap(), spec, "{json}");
        if spec.kind() == "bigram" {
            assert!(spec.build(&vocab, &mut rand::rngs::StdRng::seed_from_u64(0)).is_err());
            continue;
        }
        let model = spec.build(&vocab, &mut rand::rngs::StdRng::seed_from_u64(0)).unwrap();
        assert_eq!(model.kind(), spec.kind());
        assert_eq!(model.num_params() as u128, spec.num_params(vocab.len()), "{json}");
        assert_eq!(model.spec(), spec, "{json}");
        assert_eq!(model.neural().unwrap().layout(), spec.layout());
        assert_eq!(model.neural().unwrap().block_size(), spec.block_size());
    }
}

#[test]
fn settings_are_parsed_by_name_with_errors_that_name_them() {
    let sizes = |pairs: &'static [(&str, &str)]| {
        move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string())
    };
    let t = Spec::parse("transformer", sizes(&[("n_layer", "2"), ("n_embd", "32")]), false).unwrap();
    assert_eq!(t, Spec::transformer(16, 2, 4, 32));
    assert_eq!(
        Spec::parse("transformer", sizes(&[("n_layer", "2")]), true),
        Err(SpecError::Setting { key: "block_size".into(), problem: "missing".into() })
    );
    let e = Spec::parse("mlp", sizes(&[("n_hidden", "lots")]), false).unwrap_err();
    assert_eq!(e.to_string(), "setting \"n_hidden\" is \"lots\", not a whole number");
    let e = Spec::parse("bn-mlp", sizes(&[("momentum", "NaN")]), false).unwrap_err();
    assert!(e.to_string().contains("momentum"), "{e}");
    assert_eq!(Spec::parse("gpt", sizes(&[]), false), Err(SpecError::UnknownKind("gpt".into())));
    let e = Spec::parse("mlp", sizes(&[("init", "xavier")]), false).unwrap_err();
    assert!(e.to_string().contains("xavier"), "{e}");
    // A spec file with a setting the kind does not have is refused.
    assert!(
        serde_json::from_str::<Spec>(
            r#"{"kind": "rnn", "block_size": 16, "n_embd": 8, "n_embd2": 8, "n_head": 2}"#
        )
        .is_err()
    );
}

/// A setting whose text the spec refuses is named by its key, not by the model's kind.
#[test]
fn a_refused_setting_is_named_by_its_key() {
    let err = mm_models::Spec::parse("mlp", |k| (k == "init").then(|| "xyz".into()), false).unwrap_err();
    assert!(matches!(&err, mm_models::SpecError::Setting { key, .. } if key == "init"), "{err}");
}
