global using Understudy.Protocol;
