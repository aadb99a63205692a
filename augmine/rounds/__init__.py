"""Mining rounds: where a run's rounds stand (`state`), a round's plan (`plans`), the modes
and their control (`arms`), the gentle mode's recipe (`gentle`), a round and its control
(`runner`), their effect (`measure`), `mine compare` (`compare`), `mine suspects`
(`suspects`) and their lines of text for people (`text`)."""
